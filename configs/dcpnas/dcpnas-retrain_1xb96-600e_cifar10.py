# Retrain a searched genotype on CIFAR-10 as a 1-bit network: DARTS's evaluation network
# (20 cells, 36 initial channels), real-valued stem and classifier, Adam, weight decay 0 and
# cosine (the step-2 recipe of the ImageNet retraining) at lr 1e-3 (its base lr, not scaled to the
# batch), for 600 epochs, batch 96 [our choice: the paper has no CIFAR-10 retraining recipe].
# Pass your search's genotype:
#   --cfg-options model.backbone.genotype=work_dirs/dcpnas_search_1xb64-50e_cifar10/genotype.py
_base_ = ['./dcpnas-retrain_1xb128-3e_fashion-mnist.py']

model = dict(
    backbone=dict(genotype='work_dirs/dcpnas_search_1xb64-50e_cifar10/genotype.py', channels=36,
                  num_cells=20, in_channels=3, stem_stride=1),
    head=dict(in_channels=576))  # 4 nodes x 144 channels
data_preprocessor = dict(num_classes=10, mean=[125.307, 122.961, 113.8575],
                         std=[51.5865, 50.847, 51.255], to_rgb=False)

dataset_type = 'CIFAR10'
data_root = 'data/cifar10'
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=96,
    num_workers=4,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256,
    num_workers=4,
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 600
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                        eta_min=0.0, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
