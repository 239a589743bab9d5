# GOD (Kamitani), subject 3, ROI VC (4,643 voxels, padded to 4,656 = 291 patches) on
# MinD-Vis's layout (projects/cmvdm/README.md#data): 1,200 training images (10% of them, with
# all their trials, carved as val for model selection), 50 test images with responses averaged
# over repeats. Scalar z-score with the training trials' statistics, as MinD-Vis.
num_voxels = 4656
num_patches = 291
data = dict(type='mmext.GODDataset', data_root='data/Kamitani/npz', subject='sbj_3', roi='VC',
            zscore='global', val_fraction=0.1, val_seed=0)

# MinD-Vis's transforms: 20% random crop (p 0.5) then 256 px, images in [-1, 1]; voxels
# wrap-padded by at least one 16-voxel patch (its checkpoints' lengths), 20% voxel dropout.
train_pipeline = [
    dict(type='mmext.VoxelPad', multiple=16, always=True),
    dict(type='mmext.VoxelDropout', p=0.2),
    dict(type='RandomApply', prob=0.5, transforms=[dict(type='RandomCrop', crop_size=205)]),
    dict(type='Resize', scale=(256, 256)),
    dict(type='mmext.PackFMRIInputs'),
]
test_pipeline = [
    dict(type='mmext.VoxelPad', multiple=16, always=True),
    dict(type='Resize', scale=(256, 256)),
    dict(type='mmext.PackFMRIInputs'),
]
train_dataloader = dict(
    batch_size=24, num_workers=4,
    dataset=dict(**data, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(**data, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'))
test_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(**data, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'))
