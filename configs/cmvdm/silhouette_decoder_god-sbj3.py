# The silhouette assistant network on god-sbj3, second phase: the voxel -> image decoder D_s
# (E_s frozen; supervised + encoder-decoder on the training images, weights 1 / 1 / 0; lr 5e-3,
# 150 epochs, x0.2 at 100 and 140; spec 10.4), image loss MAE + VGG16 perceptual (torchvision's
# ImageNet weights as a local file, blocks 1-5 weighted 10 / 10 / 10 / 10 / 2) + 0.3 TV +
# 0.1 (1 - SSIM). The released code's extra unlabelled images are not in this config.
#   python tools/train.py configs/cmvdm/silhouette_decoder_god-sbj3.py
_base_ = ['./silhouette_encoder_god-sbj3.py']

load_from = 'work_dirs/silhouette_encoder_god-sbj3/epoch_50.pth'
model = dict(phase='decoder', weights=(1.0, 1.0, 0.0), tv_weight=0.3, ssim_weight=0.1,
             perceptual=dict(type='mmext.VGGPerceptualLoss',
                             checkpoint='checkpoints/vgg16-397923af.pth',
                             weights=(10, 10, 10, 10, 2)))
max_epochs = 150
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-3))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[100, 140], gamma=0.2)]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=50))
