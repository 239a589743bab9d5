# CMVDM demo, stage A without the alignment loss: conditioning only, MinD-Vis's recipe (the
# benchmark's first row). Everything trains: the UNet starts from scratch here (MinD-Vis
# fine-tunes a pretrained LDM, whose stage-A trainable set is in the production configs). The
# fMRI encoder starts from the masked pretraining run:
#   python tools/train.py configs/cmvdm/fmri-mae_demo_simulated-fmri.py
#   python tools/train.py configs/cmvdm/cmvdm_demo_stage-a-no-align_simulated-fmri.py
_base_ = ['./_base_/cmvdm_demo.py']

max_iters = 1000
mae_checkpoint = 'work_dirs/fmri-mae_demo_simulated-fmri/epoch_20.pth'
model = dict(trainable=['.*'], encoder=dict(init_cfg=dict(
    type='Pretrained', checkpoint=mae_checkpoint, prefix='encoder.')))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-2),
                     clip_grad=dict(max_norm=0.5))
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
                   dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters,
                        T_max=max_iters - 100)]
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
val_cfg, test_cfg = dict(), dict()
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
