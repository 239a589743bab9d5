# Bi-ViT ablation row 1, DeiT-Tiny on ImageNet-1k: the plain binarized transformer, the root of
# the chain _binary-baseline -> _scaling -> _qk-norm -> _distill -> (no suffix), each child
# adding one Bi-ViT component. Every Linear, q, k, v and attention probability
# binarized (W-A-Attn 1-1-1, biases kept), the q, k, v and P binarizers' scales and zero
# points fixed at their data-driven initial values, no qk-norm, no teacher: the label loss
# only. It starts from mmpretrain's real-valued DeiT-Tiny checkpoint (74.5 top-1 in its
# model zoo; the paper reports 72.2), which is also the teacher of the distilled rows.
# The recipe (./deit-tiny_4xb256-300e_in1k.py, on mmpretrain's DeiT-Tiny config): AdamW,
# lr 5e-4 x batch / 512 (1e-3 at batch 1024), weight decay 0.05, 5 linear warm-up epochs,
# cosine to epoch 300, drop-path 0.1, label smoothing 0.1, Mixup / CutMix.
_base_ = './deit-tiny_4xb256-300e_in1k.py'
custom_imports = dict(imports=['mmext', 'projects.bivit'], allow_failed_imports=False)

# mmpretrain's model zoo, kept by the user:
# https://download.openmmlab.com/mmclassification/v0/deit/deit-tiny_pt-4xb256_in1k_20220218-13b382a0.pth
float_checkpoint = 'checkpoints/deit-tiny_pt-4xb256_in1k_20220218-13b382a0.pth'
# the real-valued teacher of the distilled rows (plain: no distillation token)
float_teacher = dict(config='mmpretrain::deit/deit-tiny_4xb256_in1k.py',
                     checkpoint=float_checkpoint)
model = dict(
    _delete_=True,
    type='mmext.BiViT',
    classifier={{_base_.model}},
    quant=dict(type='mmext.BiViTSwap', learnable_scale=False, qk_norm=False))
# no teacher and no distillation loss here (model.teacher and model.distill absent: none);
# the _distill row adds the teacher, Bi-ViT the ranking loss
load_from = float_checkpoint
