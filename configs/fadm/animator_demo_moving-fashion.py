# FADM demo, step 1: the coarse animator (a small keypoint-and-dense-motion network, FOMM's
# design at 32 x 32) trained on moving Fashion-MNIST pairs with L1 to the driving frame; its
# artefacts are what FADM refines. 2,000 iterations of 32 pairs.
#   python tools/train.py configs/fadm/animator_demo_moving-fashion.py
_base_ = ['./_base_/moving-fashion.py']

model = dict(type='mmext.KeypointAnimator', in_channels=1, num_keypoints=8, channels=32,
             data_preprocessor={{_base_.data_preprocessor}})
max_iters = 2000
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, T_max=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
