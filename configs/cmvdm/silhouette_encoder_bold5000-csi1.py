# The silhouette assistant network on bold5000-csi1, first phase: the image -> voxel encoder E_s
# (spec 10.4: lr 1e-3, 50 epochs), images at 112 px.
#   python tools/train.py configs/cmvdm/silhouette_encoder_bold5000-csi1.py
_base_ = ['./_base_/bold5000_csi1.py', 'mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.cmvdm'], allow_failed_imports=False)

model = dict(
    type='mmext.SilhouetteTrainer', phase='encoder',
    decoder=dict(type='mmext.SilhouetteDecoder', num_voxels={{_base_.num_voxels}},
                 out_channels=3, channels=64, start_size=14, num_up=3, out_size=112, groups=32),
    encoder=dict(type='mmext.SilhouetteEncoder', num_voxels={{_base_.num_voxels}},
                 in_channels=3, channels=64, num_down=3, pool_size=4, groups=32),
    data_preprocessor=dict(type='BaseDataPreprocessor'))
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=[
    dict(type='mmext.VoxelPad', multiple=16, always=True),
    dict(type='Resize', scale=(112, 112)), dict(type='mmext.PackFMRIInputs')]))
max_epochs = 50
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
val_cfg = val_dataloader = val_evaluator = None
test_cfg = test_dataloader = test_evaluator = None
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))
