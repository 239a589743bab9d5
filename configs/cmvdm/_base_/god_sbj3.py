# GOD (Kamitani), subject 3, ROI VC (4,643 voxels, padded to 4,656 = 291 patches) on
# MinD-Vis's layout (projects/cmvdm/README.md#data): 1,200 training images (10% of them, with
# all their trials, carved as val for model selection), 50 test images with responses averaged
# over repeats. Scalar z-score with the training trials' statistics, as MinD-Vis.
_base_ = ['./fmri_loaders.py']
num_voxels = 4656
num_patches = 291
data = dict(type='mmext.GODDataset', data_root='data/Kamitani/npz', subject='sbj_3', roi='VC',
            zscore='global', val_fraction=0.1, val_seed=0)

train_dataloader = dict(dataset=data)
val_dataloader = dict(dataset=data)
test_dataloader = dict(dataset=data)
