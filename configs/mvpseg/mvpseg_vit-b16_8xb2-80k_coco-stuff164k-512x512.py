# MVP-SEG, COCO-Stuff 164k (171 classes), 156 seen / 15 unseen (the SPNet / ZegFormer split),
# inductive. Reference (ZegCLIP, ViT-B/16, inductive): mIoU seen 40.2 / unseen 41.1 / hIoU 40.8.
_base_ = [
    'mmseg::_base_/datasets/coco-stuff164k.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/mvpseg_vit-b16.py',
    './_base_/mvpseg_schedule.py',
]
custom_imports = dict(imports=['mmext', 'projects.mvpseg'], allow_failed_imports=False)

unseen = ['frisbee', 'skateboard', 'cardboard', 'carrot', 'scissors', 'suitcase', 'giraffe',
          'cow', 'road', 'wall-concrete', 'tree', 'grass', 'river', 'clouds', 'playingfield']
# the class texts are mmseg's COCO-Stuff names, '-' read as a space ('wall concrete')
model = dict(decode_head=dict(class_names='COCOStuffDataset', unseen_classes=unseen))
train_dataloader = dict(batch_size=2)
val_evaluator = dict(_delete_=True, type='mmext.OpenVocabIoUMetric', unseen_classes=unseen,
                     setting='inductive')
test_evaluator = val_evaluator

param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=80000,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=16000)
