# SADA on the few-shot Fashion Scenes items demo (16 shots, seed 1):
#   make data
#   python tools/train.py configs/sada/sada_demo-clip_16shot-20e_fashion-scene-items.py
# Other shot counts: --cfg-options model.num_shots=K train_dataloader.dataset.num_shots=K.
# Pixels reach the model in [0, 1] (it normalises for the CLIP itself, after the attack); four
# views per image (flip, grayscale, blur, flip: mmpretrain's MultiView); ProDA prompts (32 of
# 16 tokens, 4 per step); a shared adapter, one FGSM step of 2/255 where the map allows, area
# prior rho 0.5; 8 prototypes per shot and class set by a data pass (2 rounds x 4 views);
# squared Gaussian EMD, weight 1; prompt orthogonality 0.1; calibration 0.2. SGD, prompts and
# prototypes at lr 2e-3, the adapter at 1e-3, cosine; 20 epochs here (the paper: 50).
_base_ = ['./_base_/fewshot_demo-clip_fashion-scene-items.py']

pixel_preprocessor = dict(type='SelfSupDataPreprocessor', mean=[0, 0, 0], std=[255, 255, 255],
                          to_rgb=True)
model = dict(
    type='mmext.SADAClassifier',
    clip={{_base_.clip}},
    class_names={{_base_.class_names}},
    num_shots={{_base_.num_shots}},
    num_prompts=32, num_context=16, prompts_per_step=4, prototypes_per_shot=8,
    attack=dict(eps=2 / 255, steps=1),
    area_prior=dict(type='mmext.AreaPriorLoss', rho=0.5, loss_weight=1.0),
    orthogonality_loss=dict(type='mmext.PromptOrthogonalityLoss', loss_weight=0.1),
    emd_loss=dict(type='mmext.GaussianEMDLoss', squared=True, loss_weight=1.0),
    calibration=0.2,
    data_preprocessor=pixel_preprocessor)
views = [
    [dict(type='RandomFlip', prob=0.5, direction='horizontal')],
    [dict(type='RandomGrayscale', prob=0.5, keep_channels=True)],
    [dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), prob=0.5)],
    [dict(type='RandomFlip', prob=0.5, direction='horizontal')],
]
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(96, 96)),
        dict(type='MultiView', num_views=[1, 1, 1, 1], transforms=views),
        dict(type='PackInputs'),
    ]),
    collate_fn=dict(type='default_collate'))  # stacked views for SelfSupDataPreprocessor
val_dataloader = dict(collate_fn=dict(type='default_collate'))
test_dataloader = val_dataloader
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'adapters': dict(lr_mult=0.5)}))
custom_hooks = [dict(type='mmext.InitFromTrainFeaturesHook', rounds=2)]
