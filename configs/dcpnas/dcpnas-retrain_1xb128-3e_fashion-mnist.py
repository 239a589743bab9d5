# Retrain a searched genotype on Fashion-MNIST as a fixed 1-bit network (mmpretrain
# ImageClassifier with mmext.DartsNetwork; stem and classifier real-valued), from scratch.
# The genotype is a file the search wrote, or a DARTS string:
#   python tools/train.py configs/dcpnas/dcpnas-retrain_1xb128-3e_fashion-mnist.py \
#       --cfg-options model.backbone.genotype=work_dirs/dcpnas_search_fashion-mnist/genotype.py
_base_ = ['../_base_/datasets/fashion-mnist_bs128.py', 'mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmext.DartsNetwork',
        genotype='{{fileDirname}}/genotypes/dcpnas_fashion-mnist_seed0.py',
        channels=16,
        num_cells=5,
        in_channels=1,
        binary=True,
        stem_stride=2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=256,  # 4 nodes x 64 channels
              loss=dict(type='CrossEntropyLoss')))

# CPU-sized: the first 12,800 training images, 3 epochs (300 iterations, about 6 minutes on 2
# cores); the ImageNet retraining recipe shortened: Adam, cosine, no weight decay.
train_dataloader = dict(dataset=dict(indices=12800))
max_epochs = 3
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-3, weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                        eta_min=1e-5, convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
