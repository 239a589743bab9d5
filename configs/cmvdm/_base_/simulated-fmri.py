# The CMVDM demo's data: simulated fMRI responses to Fashion-MNIST stimuli (4,000 training
# trials, 400 val trials of held-out training stimuli for model selection, 200 test stimuli from
# Fashion-MNIST test with responses averaged over 10 repeats; 4,096 voxels, single-trial SNR
# 0.1). A simulator, not a brain: mmext/datasets/simulated_fmri.py. `make data` writes it.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.cmvdm'], allow_failed_imports=False)

num_voxels = 4096            # already a multiple of the 16-voxel patches (VoxelPad keeps it)
num_patches = num_voxels // 16
data_root = 'data/simulated_fmri'
data = dict(type='mmext.SimulatedFMRIDataset', data_root=data_root, zscore='voxel')
train_pipeline = [
    dict(type='mmext.VoxelPad', multiple=16),
    dict(type='mmext.VoxelDropout', p=0.2),
    dict(type='mmext.PackFMRIInputs'),
]
test_pipeline = [dict(type='mmext.VoxelPad', multiple=16), dict(type='mmext.PackFMRIInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=1, drop_last=True,
    dataset=dict(**data, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=50, num_workers=1,
    dataset=dict(**data, split='val', pipeline=test_pipeline, indices=100),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
test_dataloader = dict(
    batch_size=50, num_workers=1,
    dataset=dict(**data, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
# The judge of n-way identification: LeNet-5 trained on Fashion-MNIST train
# (configs/cmvdm/judge_lenet5_fashion-mnist.py), never on the simulated data.
judge = dict(config='configs/cmvdm/judge_lenet5_fashion-mnist.py',
             checkpoint='work_dirs/judge_lenet5_fashion-mnist/epoch_3.pth')
val_evaluator = dict(type='mmext.ReconstructionMetric', judge=judge, n_way=(2, 10))
# Test adds a Frechet distance on the judge's 84-d penultimate features (named so in its key):
# Inception features of 32 x 32 grey items would be neither meaningful nor FID (spec 1.7).
test_evaluator = [
    val_evaluator,
    dict(type='mmext.FrechetDistanceMetric', judge=judge, judge_layer='backbone.classifier.1',
         feature_name='lenet5-fmnist-fc84')]
data_preprocessor = dict(type='BaseDataPreprocessor')

# The silhouette assistant network (spec 10.4 at 32 x 32 grey): D_s voxels -> Linear ->
# 32 x 4 x 4 -> three bicubic x2 blocks -> 1 x 32 x 32; E_s image -> three strided convs ->
# 4 x 4 pool -> Linear -> voxels. Trained by the silhouette_demo_* configs, loaded by stage B.
silhouette_decoder = dict(type='mmext.SilhouetteDecoder', num_voxels=num_voxels, out_channels=1,
                          channels=32, start_size=4, num_up=3, out_size=32, groups=8)
silhouette_encoder = dict(type='mmext.SilhouetteEncoder', num_voxels=num_voxels, in_channels=1,
                          channels=32, num_down=3, pool_size=4, groups=8)
silhouette_checkpoint = 'work_dirs/silhouette_demo_decoder_simulated-fmri/epoch_12.pth'
randomness = dict(seed=0)
