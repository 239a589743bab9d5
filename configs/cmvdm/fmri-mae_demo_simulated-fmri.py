# Masked pretraining of the demo's fMRI encoder on the simulated training trials (spec 10.2:
# 75% of the 16-voxel patches hidden, MSE on them); stage A starts from its encoder:
#   python tools/train.py configs/cmvdm/fmri-mae_demo_simulated-fmri.py
_base_ = ['./_base_/cmvdm_demo.py']

model = dict(_delete_=True, type='mmext.FMRIMaskedPretrainer', encoder={{_base_.encoder}},
             decoder_dim=64, decoder_depth=2, decoder_heads=4, mask_ratio=0.75,
             data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(batch_size=64)
max_epochs = 20
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
                     logger=dict(interval=20))
