# Real-valued DeiT-Tiny (12 layers, embed 192, 3 heads) on Fashion-MNIST: patch 4 on the 28 x 28
# grey images (49 patches + the class token), one input channel, 10 classes, through the stock
# mmpretrain runner. The teacher and starting point of bivit_deit-tiny-p4_*_fashion-mnist.py.
_base_ = ['../_base_/datasets/fashion-mnist_bs128.py', 'mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='deit-tiny',
        img_size=28,
        patch_size=4,
        in_channels=1,
        drop_rate=0.0,
        drop_path_rate=0.1,
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02)]),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=192,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')))

# DeiT's recipe, shortened: AdamW, weight decay 0.05, cosine with warm-up, label smoothing 0.1.
# The parameter groups paramwise_cfg makes (one per parameter) merged where their options are
# equal, and AdamW's fused update: one kernel per group instead of a launch per parameter, which
# a binarized model multiplies (projects/bivit/README.md, "Faster training on a CPU").
max_epochs = 20
optim_wrapper = dict(
    constructor='mmext.MergedGroupsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, fused=True),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'.cls_token': dict(decay_mult=0.0),
                                    '.pos_embed': dict(decay_mult=0.0)}))
# glibc malloc's thresholds fixed (tools/train.py applies them): the heap keeps up to 256 MiB of
# freed memory for the next step instead of giving it back and faulting it in again; a
# quantized model's step took thousands of page faults without it (README, "Page faults").
env_cfg = dict(malloc_cfg=dict(mmap_threshold=32 * 2**20, trim_threshold=256 * 2**20))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1), logger=dict(interval=100))
