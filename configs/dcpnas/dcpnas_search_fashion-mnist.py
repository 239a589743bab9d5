# DCP-NAS search on the embedded Fashion-MNIST, sized for a 2-core CPU (at most 20 minutes):
# a real-valued parent and a 1-bit child DARTS supernet (3 cells, 8 channels, stride-2 stem so
# cells see 14 x 14) share one set of architecture parameters. Weights train on the first half of
# the training set, architecture parameters on the second half (never on the test set); the
# test set only monitors the child supernet. The final genotype is written to
# <work_dir>/genotype.py and drawn in <work_dir>/genotype.png.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.dcpnas'], allow_failed_imports=False)

model = dict(
    type='mmext.DCPNAS',
    supernet=dict(channels=8, num_cells=3, in_channels=1, num_classes=10, stem_stride=2),
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[72.94],
                           std=[90.02], to_rgb=False),
    use_parent=True,
    tangent_weight=0.01,  # lambda
    reconstruction_weight=1e-4,  # mu
    discrepancy='fro',
    tangent='loss_gradient',
    decoupled=dict(eta2=1.0, psi_init=0.01, psi_lr=1e-3))
# Under `tools/dist_train.sh` / `--launcher pytorch`: each process runs the whole search
# iteration on its own batches, with the gradients averaged over the processes (a search
# iteration is four updates, not mmengine's one forward and backward).
model_wrapper_cfg = dict(type='mmext.DCPNASDistributedDataParallel')

dataset_type = 'mmext.FashionMNIST'
train_pipeline = [dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                  dict(type='PackInputs')]
test_pipeline = [dict(type='PackInputs')]
search_images = 3200  # per half: 2 epochs of 100 iterations, about 13 minutes on 2 cores
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(type=dataset_type, split='train', index_range=(0, 30000),
                 indices=search_images, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
arch_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(type=dataset_type, split='train', index_range=(30000, 60000),
                 indices=search_images, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=250,
    num_workers=1,
    dataset=dict(type=dataset_type, split='test', indices=2000, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 2
train_cfg = dict(type='mmext.NASSearchLoop', max_epochs=max_epochs, val_interval=1,
                 arch_dataloader=arch_dataloader)
val_cfg = dict()
test_cfg = dict()

# The CIFAR-10 search's settings (DARTS's; the paper gives none): weights SGD 0.025 cosine
# (parent), alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3. Our choices for a search of a few
# hundred iterations: the 1-bit child trains with Adam 1e-3 (SGD barely moves binary weights
# that fast) and alpha with Adam 3e-3.
optim_wrapper = dict(
    constructor='mmext.MultiOptimWrapperConstructor',
    parent=dict(optimizer=dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=3e-4),
                clip_grad=dict(max_norm=5.0)),
    child=dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.0),
               clip_grad=dict(max_norm=5.0)),
    arch=dict(optimizer=dict(type='Adam', lr=3e-3, betas=(0.5, 0.999), weight_decay=1e-3)))
param_scheduler = dict(
    parent=[dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                 eta_min=1e-3, convert_to_iter_based=True)],
    child=[dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                eta_min=1e-5, convert_to_iter_based=True)],
    arch=[])  # constant

default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
custom_hooks = [dict(type='mmext.DumpGenotypeHook')]
randomness = dict(seed=0)
