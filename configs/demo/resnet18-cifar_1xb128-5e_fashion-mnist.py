# mmpretrain's CIFAR ResNet-18 on Fashion-MNIST (grey 28x28, padded to 32), through the stock
# mmpretrain runner. A small classification demo of the tools; the binary-network methods start
# from this data.
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(backbone=dict(in_channels=1))
data_preprocessor = dict(num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)

dataset_type = 'mmext.FashionMNIST'
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='CenterCrop', crop_size=32, auto_pad=True), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=1,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256,
    num_workers=1,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=1)
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=5)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))
# mmpretrain's base marks its visualizer with `_scope_`, which mmpretrain's
# tools/visualization/browse_dataset.py passes on to the visualizer's constructor (a TypeError);
# the same visualizer without the mark (the default scope is mmpretrain's)
visualizer = dict(_delete_=True, type='UniversalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
