# SADA's few-shot protocol on a CoOp dataset (spec section 7.4): the frozen OpenAI CLIP RN50,
# k shots per class drawn from the dataset's split_zhou_*.json with the run's seed (CoOp: seeds
# 1, 2, 3), 50 epochs, image batch 20, SGD with a cosine schedule: prompts and prototypes at
# lr 2e-3 (5e-4 x 4 prompts per step x 20 / 20), the adapter at 1e-3; evaluation on the test
# split. Four training views per image (flip + centre crop, random grayscale, Gaussian blur,
# flip + centre crop), pixels in [0, 1] to the model (it normalises after the attack).
# A dataset fragment (./datasets/*.py) gives `few_shot` (its FewShotDataset arguments),
# `num_classes` and `class_names` (the split file, read when the model first needs names).
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.sada'], allow_failed_imports=False)

clip = dict(model_name='RN50', pretrained='openai')
max_epochs = 50
pixel_preprocessor = dict(type='SelfSupDataPreprocessor', mean=[0, 0, 0], std=[255, 255, 255],
                          to_rgb=True)
view = [dict(type='ResizeEdge', scale=224, edge='short', interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=224)]
views = [
    view + [dict(type='RandomFlip', prob=0.5, direction='horizontal')],
    view + [dict(type='RandomGrayscale', prob=0.5, keep_channels=True)],
    view + [dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), prob=0.5)],
    view + [dict(type='RandomFlip', prob=0.5, direction='horizontal')],
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1, 1, 1], transforms=views),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), *view, dict(type='PackInputs')]
# the baselines: one view, normalised by the data preprocessor
test_pipeline_flip = [dict(type='LoadImageFromFile'), *view,
                      dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                      dict(type='PackInputs')]
clip_preprocessor = dict(type='ClsDataPreprocessor', mean=[122.771, 116.746, 104.094],
                         std=[68.501, 66.632, 70.323], to_rgb=True)  # OpenAI CLIP's
train_dataloader = dict(
    batch_size=20,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=100,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

model = dict(
    type='mmext.SADAClassifier',
    clip=clip,
    num_prompts=32, num_context=16, prompts_per_step=4, prototypes_per_shot=8,
    attack=dict(eps=2 / 255, steps=1),
    area_prior=dict(type='mmext.AreaPriorLoss', rho=0.5, loss_weight=1.0),
    orthogonality_loss=dict(type='mmext.PromptOrthogonalityLoss', loss_weight=0.1),
    emd_loss=dict(type='mmext.GaussianEMDLoss', squared=True, loss_weight=1.0),
    calibration=0.2,
    data_preprocessor=pixel_preprocessor)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=2e-3, momentum=0.9, weight_decay=5e-4),
                     paramwise_cfg=dict(custom_keys={'adapters': dict(lr_mult=0.5)}))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs,
                        eta_min=0.0)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
custom_hooks = [dict(type='mmext.InitFromTrainFeaturesHook', rounds=2)]
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
                     logger=dict(interval=10))
randomness = dict(seed=1)
