# The few-shot demo shared by SADA and its baselines: Fashion-MNIST items on Fashion Scenes
# backgrounds (a domain shift: the demo CLIP's zero-shot accuracy on these canvases is 84%),
# read through CoOp's split-file layout like the 11 real datasets
# (data/fashion_scene_items/split_zhou_FashionSceneItems.json, `make data`: 2,402 train and
# 598 val canvases carved from the training canvases, 500 test canvases). k shots per class
# from the train split with the run's seed; the frozen demo CLIP at 96 px.
# Run a shot count and seed with --cfg-options num_shots=K (below) or as benchmarks/sada.py does.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.sada'], allow_failed_imports=False)

class_names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
               'Sneaker', 'Bag', 'Ankle boot']
clip = dict(model_name='mmext:demo-clip')
num_shots = 16
shot_seed = 1
data_preprocessor = dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)  # the demo CLIP's
few_shot = dict(type='mmext.FewShotDataset', data_root='data/fashion_scene_items',
                split_file='split_zhou_FashionSceneItems.json', image_dir='')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=20,
    num_workers=1,
    dataset=dict(**few_shot, split='train', num_shots=num_shots, seed=shot_seed,
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=100,
    num_workers=1,
    dataset=dict(**few_shot, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 20
optim_wrapper = dict(optimizer=dict(type='SGD', lr=2e-3, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs,
                        eta_min=0.0)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
                     logger=dict(interval=10))
randomness = dict(seed=1, deterministic=False)
