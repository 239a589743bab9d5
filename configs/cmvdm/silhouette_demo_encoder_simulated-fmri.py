# The silhouette assistant network of the demo, first phase: the image -> voxel encoder E_s on
# the paired training trials (spec 10.4: lr 1e-3, 50 epochs; here 10):
#   python tools/train.py configs/cmvdm/silhouette_demo_encoder_simulated-fmri.py
_base_ = ['./_base_/silhouette_demo.py']

model = dict(phase='encoder')
max_epochs = 10
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
                     logger=dict(interval=20))
