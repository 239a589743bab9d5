# Loaders shared by the real fMRI data sets (GOD, BOLD5000); a data-set file inherits this one
# and gives `dataset=data` to each loader. MinD-Vis's transforms: 20% random crop (p 0.5) then
# 256 px, images in [-1, 1]; voxels wrap-padded by at least one 16-voxel patch (its
# checkpoints' lengths), 20% voxel dropout.
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
    dataset=dict(split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'))
test_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'))
