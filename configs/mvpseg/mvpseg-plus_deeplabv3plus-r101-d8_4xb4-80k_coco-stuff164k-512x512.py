# MVP-SEG+ stage 2 on COCO-Stuff 164k (171 classes, 156 seen / 15 unseen, transductive): an
# ordinary mmseg DeepLabV3+ R101-d8 (our choice; the paper names none we could
# check) trained on the seen ground truth plus MVP-SEG's pseudo-labels for the unseen classes.
# The paper's number for MVP-SEG+ here: hIoU 45.5 (ZegCLIP, transductive: 40.7 / 59.9 / 48.5).
#   1. python tools/train.py configs/mvpseg/mvpseg_vit-b16_8xb2-80k_coco-stuff164k-512x512_transductive.py
#   2. python tools/data/mvpseg_pseudo_labels.py \
#          configs/mvpseg/mvpseg_vit-b16_8xb2-80k_coco-stuff164k-512x512_transductive.py \
#          work_dirs/mvpseg_vit-b16_8xb2-80k_coco-stuff164k-512x512_transductive/iter_80000.pth \
#          --out data/coco_stuff164k/annotations/train2017_mvpseg-plus
#   3. bash tools/dist_train.sh THIS_CONFIG 4
# Schedule: mmseg's DeepLabV3+ one (SGD 0.01, poly, 80k iterations, batch 16).
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    'mmseg::_base_/datasets/coco-stuff164k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

# the same split as the MVP-SEG COCO-Stuff configs (a test checks that they agree)
unseen = ['frisbee', 'skateboard', 'cardboard', 'carrot', 'scissors', 'suitcase', 'giraffe',
          'cow', 'road', 'wall-concrete', 'tree', 'grass', 'river', 'clouds', 'playingfield']
crop_size = (512, 512)
model = dict(
    pretrained='open-mmlab://resnet101_v1c',
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=101),
    decode_head=dict(num_classes=171),
    auxiliary_head=dict(num_classes=171))

# training labels: seen ground truth + pseudo-labels, written by the tool (step 2 above) in the
# format of annotations/train2017; validation keeps the real ground truth
train_dataloader = dict(dataset=dict(
    data_prefix=dict(img_path='images/train2017',
                     seg_map_path='annotations/train2017_mvpseg-plus')))
val_evaluator = dict(_delete_=True, type='mmext.OpenVocabIoUMetric', unseen_classes=unseen,
                     setting='transductive')
test_evaluator = val_evaluator
