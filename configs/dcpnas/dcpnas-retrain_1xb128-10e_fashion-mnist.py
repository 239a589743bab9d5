# Retrain a searched genotype on Fashion-MNIST as a fixed 1-bit network (mmpretrain
# ImageClassifier with mmext.DartsNetwork; stem and classifier real-valued), from scratch.
# The genotype is a file the search wrote, or a DARTS string:
#   python tools/train.py configs/dcpnas/dcpnas-retrain_1xb128-10e_fashion-mnist.py \
#       --cfg-options model.backbone.genotype=work_dirs/dcpnas_search_fashion-mnist/genotype.py
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmext.DartsNetwork',
        genotype='configs/dcpnas/genotypes/dcpnas_fashion-mnist_seed0.py',
        channels=16,
        num_cells=5,
        in_channels=1,
        binary=True,
        stem_stride=2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=256,  # 4 nodes x 64 channels
              loss=dict(type='CrossEntropyLoss')))
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

# The binary-network recipe of methods.md §4.5, shortened: Adam, cosine, no weight decay.
max_epochs = 10
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-3, weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                        eta_min=1e-5, convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
