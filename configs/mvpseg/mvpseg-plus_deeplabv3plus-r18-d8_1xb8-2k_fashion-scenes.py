# MVP-SEG+ stage 2 on the Fashion Scenes canvases: an ordinary mmseg DeepLabV3+ (ResNet-18 d8,
# from scratch: no ImageNet weights here) trained on the seen ground truth plus the demo
# MVP-SEG's pseudo-labels for the 3 unseen classes; evaluated on the real val labels over all
# 10 names (mIoU seen / unseen / hIoU, transductive).
#   1. python tools/train.py configs/mvpseg/mvpseg_demo-clip_1xb16-200it_fashion-scenes.py
#   2. python tools/data/mvpseg_pseudo_labels.py \
#          configs/mvpseg/mvpseg_demo-clip_1xb16-200it_fashion-scenes.py \
#          work_dirs/mvpseg_demo-clip_1xb16-200it_fashion-scenes/iter_200.pth \
#          --out data/fashion_scenes/train/labels_mvpseg-plus
#   3. python tools/train.py configs/mvpseg/mvpseg-plus_deeplabv3plus-r18-d8_1xb8-2k_fashion-scenes.py
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

# as in the MVP-SEG demo config (a test checks that they agree): background ignored through
# mmseg's label map, 7 seen / 3 unseen Fashion-MNIST classes
class_names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
               'Sneaker', 'Bag', 'Ankle boot']
unseen_classes = ['Pullover', 'Sandal', 'Bag']
metainfo = dict(classes=class_names)

crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a GPU process group
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=512, channels=128, c1_in_channels=64, c1_channels=12,
                     num_classes=10, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=10, norm_cfg=norm_cfg))

dataset_type = 'mmext.FashionScenesSegDataset'
data_root = 'data/fashion_scenes/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    # seen ground truth + pseudo-labels, written by the tool (step 2 above)
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='train/images',
                                  seg_map_path='train/labels_mvpseg-plus'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='val/images', seg_map_path='val/labels'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmext.OpenVocabIoUMetric', unseen_classes=unseen_classes,
                     setting='transductive')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2000,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000, val_interval=500)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=1))
