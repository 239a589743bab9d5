# BOLD5000, subject CSI1, ROIs EarlyVis, LOC, OPA, PPA, RSC of both hemispheres (1,685 voxels,
# padded to 1,696 = 106 patches) on MinD-Vis's layout (projects/cmvdm/README.md#data): the 113
# repeated images are the test set (responses averaged), 10% of the other images val.
_base_ = ['./fmri_loaders.py']
num_voxels = 1696
num_patches = 106
data = dict(type='mmext.BOLD5000Dataset', data_root='data/BOLD5000', subject='CSI1',
            zscore='global', val_fraction=0.1, val_seed=0)

train_dataloader = dict(dataset=data)
val_dataloader = dict(dataset=data)
test_dataloader = dict(dataset=data)
