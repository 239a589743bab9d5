# DCP-NAS search on CIFAR-10 (DARTS's settings; the paper gives none): parent and 1-bit child supernets of 8
# cells, 16 initial channels, 50 epochs, batch 64; the training set split 50/50 into a weight
# half and an architecture half (never the test set). CIFAR-10 in data/cifar10 as mmpretrain
# keeps it. One GPU; the final genotype goes to <work_dir>/genotype.py.
_base_ = ['./dcpnas_search_fashion-mnist.py']

model = dict(
    supernet=dict(_delete_=True, channels=16, num_cells=8, in_channels=3, num_classes=10),
    data_preprocessor=dict(num_classes=10, mean=[125.307, 122.961, 113.8575],
                           std=[51.5865, 50.847, 51.255], to_rgb=False))

dataset_type = 'CIFAR10'
data_root = 'data/cifar10'
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, split='train',
                 indices=range(0, 25000), pipeline=train_pipeline))
arch_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, split='train',
                 indices=range(25000, 50000), pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256,
    num_workers=4,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 50
train_cfg = dict(max_epochs=max_epochs, val_interval=5, arch_dataloader=arch_dataloader)
# DARTS's settings: weights SGD 0.025 cosine, alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3
optim_wrapper = dict(
    child=dict(optimizer=dict(_delete_=True, type='SGD', lr=0.025, momentum=0.9,
                              weight_decay=3e-4)),
    arch=dict(optimizer=dict(lr=3e-4)))
param_scheduler = dict(
    parent=[dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                 eta_min=1e-3, convert_to_iter_based=True)],
    child=[dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                eta_min=1e-3, convert_to_iter_based=True)],
    arch=[])
default_hooks = dict(logger=dict(interval=50))
