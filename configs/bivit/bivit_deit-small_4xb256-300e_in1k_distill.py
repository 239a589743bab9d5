# Bi-ViT ablation row 4, DeiT-Small: + DeiT's hard distillation from the real-valued teacher
# through a distillation token: the classifier becomes mmpretrain's distilled DeiT
# (mmext.DistillationTokenViT, tokens [cls, dist, patches]; mmext.HardDistillationHead, one
# linear head per token). Training loss: 0.5 x the class head's label loss (its own: label
# smoothing 0.1, and Mixup / CutMix targets where the recipe mixes) + 0.5 CE(teacher's argmax,
# distillation head); at test time the two heads' logits are averaged. The float start
# checkpoint has no distillation token: the token, its position embedding and its head start as
# copies of the class token's.
_base_ = './bivit_deit-small_4xb256-300e_in1k_qk-norm.py'

model = dict(
    classifier=dict(
        backbone=dict(type='mmext.DistillationTokenViT'),
        head=dict(type='mmext.HardDistillationHead',
                  loss=dict(loss_weight=0.5),
                  distill_loss=dict(type='CrossEntropyLoss', loss_weight=0.5))),
    teacher={{_base_.float_teacher}})
# no weight decay on the distillation token, as on the class token (DeiT's no_weight_decay)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.dist_token': dict(decay_mult=0.0)}))
