# BOLD5000, subject CSI1, ROIs EarlyVis, LOC, OPA, PPA, RSC of both hemispheres (1,685 voxels,
# padded to 1,696 = 106 patches) on MinD-Vis's layout (projects/cmvdm/README.md#data): the 113
# repeated images are the test set (responses averaged), 10% of the other images val.
num_voxels = 1696
num_patches = 106
data = dict(type='mmext.BOLD5000Dataset', data_root='data/BOLD5000', subject='CSI1',
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
