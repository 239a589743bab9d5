# CMVDM demo, stage B with the silhouette hint only (the benchmark's third row): a ControlNet
# built from the stage-A UNet (weights copied at the first step, zero convolutions zero), the
# frozen silhouette decoder's coarse image as its hint; only the ControlNet trains (spec 10.7).
#   python tools/train.py configs/cmvdm/cmvdm_demo_stage-b-silhouette_simulated-fmri.py
_base_ = ['./cmvdm_demo_stage-a_simulated-fmri.py']

max_iters = 600
load_from = 'work_dirs/cmvdm_demo_stage-a_simulated-fmri/iter_1000.pth'
model = dict(
    controlnet=dict(conditioning_channels=1, conditioning_embedding_out_channels=(16, )),
    silhouette={{_base_.silhouette_decoder}},
    silhouette_checkpoint={{_base_.silhouette_checkpoint}},
    trainable=[r'controlnet\.', r'residual\.'],
    align_head=None, clip=None)   # stage B's loss is L_LDM alone: no CLIP to load
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=60),
                   dict(type='CosineAnnealingLR', by_epoch=False, begin=60, end=max_iters,
                        T_max=max_iters - 60)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
