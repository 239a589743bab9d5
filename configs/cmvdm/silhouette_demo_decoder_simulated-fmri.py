# The silhouette assistant network of the demo, second phase: the voxel -> image decoder D_s
# (E_s from the first phase, frozen), supervised on the paired trials and encoder-decoder on
# them plus 4,000 Fashion-MNIST training images no trial showed (weights 1 / 1 / 0; spec 10.4:
# lr 5e-3, 150 epochs, x0.2 at 100 and 140; here 12 epochs, x0.2 at 8 and 11). Validation:
# PCC / SSIM / identification of D_s's coarse images on 100 val trials.
#   python tools/train.py configs/cmvdm/silhouette_demo_encoder_simulated-fmri.py
#   python tools/train.py configs/cmvdm/silhouette_demo_decoder_simulated-fmri.py
_base_ = ['./_base_/silhouette_demo.py']

model = dict(phase='decoder', weights=(1.0, 1.0, 0.0), tv_weight=0.3, ssim_weight=0.1)
load_from = 'work_dirs/silhouette_demo_encoder_simulated-fmri/epoch_10.pth'
train_dataloader = dict(dataset=dict(
    _delete_=True, type='ConcatDataset', datasets=[
        dict(type='mmext.SimulatedFMRIDataset', data_root={{_base_.data_root}}, split='train',
             pipeline={{_base_.train_pipeline}}),
        dict(type='mmext.SimulatedFMRIDataset', data_root={{_base_.data_root}},
             split='unlabelled', num_unlabelled=4000, pipeline={{_base_.test_pipeline}})]))
max_epochs = 12
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-3))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[8, 11], gamma=0.2)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
                     logger=dict(interval=50))
