# Transfer: the 1-bit network of a DCP-NAS genotype as an mmdet backbone, in the demo Conditional
# DETR on the embedded Fashion Scenes canvases (configs/demo/). ImageNet-style stem (stride 8),
# 16 initial channels, 5 cells; the output of cell 2 (stride 16, 4 nodes x 32 = 128 channels)
# feeds the detector, like the demo's MobileNetV2 stride-16 stage. Trained from scratch (no
# ImageNet weights exist for searched cells here), through the stock mmdet runner.
_base_ = '../demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmext.DartsNetwork',
        genotype='{{fileDirname}}/genotypes/dcpnas_fashion-mnist_seed0.py',
        channels=16,
        num_cells=5,
        in_channels=3,
        binary=True,
        stem='imagenet',
        out_indices=(2, )),
    neck=dict(in_channels=[128]))

# A backbone trained from scratch learns at the detector's learning rate: the demo's backbone
# multiplier 0.1 is for its ImageNet-initialised MobileNetV2. (With 0.1 the 1-bit backbone
# stayed where it started: the loss did not fall in 950 iterations, 0.000 mAP at 400 and 800.)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=1.0))))
