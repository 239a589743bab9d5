# Bi-ViT DeiT-Tiny on Fashion-MNIST (patch 4 on 28 x 28): W-A-Attn 1-1-1 with learnable scaling
# factors, qk-norm, DeiT's hard distillation through a distillation token and ranking-aware
# attention distillation from the real-valued DeiT-Tiny of
# deit-tiny-p4_1xb128-20e_fashion-mnist.py, which is also where the student starts (its
# checkpoint has no distillation token: the token, its position embedding and its head start
# as copies of the class token's). Train the teacher first:
#   python tools/train.py configs/bivit/deit-tiny-p4_1xb128-20e_fashion-mnist.py
#   python tools/train.py configs/bivit/bivit_deit-tiny-p4_1xb128-20e_fashion-mnist.py
_base_ = './deit-tiny-p4_1xb128-20e_fashion-mnist.py'
custom_imports = dict(imports=['mmext', 'projects.bivit'], allow_failed_imports=False)

float_checkpoint = 'work_dirs/deit-tiny-p4_1xb128-20e_fashion-mnist/epoch_20.pth'
model = dict(
    _delete_=True,
    type='mmext.BiViT',
    # the float config's classifier with a distillation token: mmpretrain's distilled DeiT
    classifier=dict(
        type='ImageClassifier',
        backbone=dict(
            type='mmext.DistillationTokenViT',
            arch='deit-tiny',
            img_size=28,
            patch_size=4,
            in_channels=1,
            drop_rate=0.0,
            drop_path_rate=0.1,
            init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02)]),
        neck=None,
        head=dict(
            type='mmext.HardDistillationHead',
            num_classes=10,
            in_channels=192,
            # DeiT: 0.5 x the label loss on the class token's head + 0.5 x CE against the
            # teacher's argmax on the distillation token's head
            loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original',
                      loss_weight=0.5),
            distill_loss=dict(type='CrossEntropyLoss', loss_weight=0.5))),
    quant=dict(type='mmext.BiViTSwap', learnable_scale=True, qk_norm=True),
    teacher=dict(config='{{fileDirname}}/deit-tiny-p4_1xb128-20e_fashion-mnist.py',
                 checkpoint=float_checkpoint),
    distill=dict(
        rank=dict(type='mmext.RankingAwareAttentionLoss', top_k=8, num_samples=32,
                  loss_weight=1.0),
        logit=None))
load_from = float_checkpoint
# no weight decay on the distillation token, as on the class token (DeiT's no_weight_decay)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.dist_token': dict(decay_mult=0.0)}))
