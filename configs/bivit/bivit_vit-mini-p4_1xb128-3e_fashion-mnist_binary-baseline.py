# Bi-ViT ablation row 1 on the miniature ViT of vit-mini-p4_1xb128-10e_fashion-mnist.py (the
# teacher and the starting point): the plain binarized ViT, the root of the chain
# _binary-baseline -> _scaling -> _qk-norm -> _distill -> (no suffix), each child adding one
# Bi-ViT component (benchmarks/bivit_ablation.py runs them all).
# W-A-Attn 1-1-1, biases kept, the q, k, v and P binarizers' scales and zero points fixed at
# their data-driven initial values, no qk-norm, no teacher; 3 epochs.
_base_ = './vit-mini-p4_1xb128-10e_fashion-mnist.py'
custom_imports = dict(imports=['mmext', 'projects.bivit'], allow_failed_imports=False)

float_checkpoint = 'work_dirs/vit-mini-p4_1xb128-10e_fashion-mnist/epoch_10.pth'
# the real-valued teacher of the distilled rows (plain: no distillation token)
float_teacher = dict(config='{{fileDirname}}/vit-mini-p4_1xb128-10e_fashion-mnist.py',
                     checkpoint=float_checkpoint)
model = dict(
    _delete_=True,
    type='mmext.BiViT',
    classifier={{_base_.model}},
    quant=dict(type='mmext.BiViTSwap', learnable_scale=False, qk_norm=False))
# no teacher and no distillation loss here (model.teacher and model.distill absent: none);
# the _distill row adds the teacher, Bi-ViT the ranking loss
load_from = float_checkpoint

max_epochs = 3
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=5e-4))
train_cfg = dict(max_epochs=max_epochs)
