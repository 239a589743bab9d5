# The silhouette assistant network on god-sbj3, second phase: the voxel -> image decoder D_s
# (E_s frozen; supervised + encoder-decoder on the training images, weights 1 / 1 / 0; lr 5e-3,
# 150 epochs, x0.2 at 100 and 140; spec 10.4). The released code's perceptual VGG16 term and
# its extra unlabelled images are not in this config (no local VGG16 weights are assumed).
#   python tools/train.py configs/cmvdm/silhouette_decoder_god-sbj3.py
_base_ = ['./silhouette_encoder_god-sbj3.py']

load_from = 'work_dirs/silhouette_encoder_god-sbj3/epoch_50.pth'
model = dict(phase='decoder', weights=(1.0, 1.0, 0.0), tv_weight=0.3, ssim_weight=0.1)
max_epochs = 150
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-3))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[100, 140], gamma=0.2)]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=50))
