# A classifier of single-item Fashion Scenes canvases (128 px, one tinted item of 28-60 px on a
# textured background), the model the Decom-CAM protocol explains: each canvas's item mask is
# exact. mmpretrain's ResNet-18 at half width (32 base channels, so CPU-sized) with the last
# stage at stride 1: layer4 is an 8 x 8 map of 256 channels, the CAM target layer.
#   make data   # or: python tools/data/make_fashion_scenes.py --out data/fashion_scene_items \
#               #         --min-items 1 --max-items 1 --num-train 3000 --num-val 500
#   python tools/train.py configs/demo/resnet18-w32_1xb64-20e_fashion-scene-items.py
# A second seed: --cfg-options randomness.seed=1 --work-dir work_dirs/<name>_seed1
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, stem_channels=32, base_channels=32,
                  strides=(1, 2, 2, 1), out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=256,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )))
# statistics of the training canvases (RGB, 0-255)
data_preprocessor = dict(num_classes=10, mean=[39.5, 38.6, 38.8], std=[30.0, 29.9, 30.6],
                         to_rgb=True)

dataset_type = 'mmext.FashionSceneItems'
data_root = 'data/fashion_scene_items'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs', algorithm_keys=('gt_mask', 'gt_bbox')),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=100,
    num_workers=1,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=20, T_max=19),
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=1),
                     logger=dict(interval=20))
randomness = dict(seed=0, deterministic=False)
