# Fashion-MNIST at its own size (28 x 28, one grey channel) from the local IDX files
# (mmext.FashionMNIST), for the binary-network configs: random crop with padding 2 and flips for
# training, the 10,000 test images for validation, top-1 accuracy.
data_preprocessor = dict(num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)

dataset_type = 'mmext.FashionMNIST'
train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=500,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
