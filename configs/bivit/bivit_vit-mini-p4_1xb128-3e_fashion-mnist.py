# Bi-ViT on the miniature ViT of vit-mini-p4_1xb128-10e_fashion-mnist.py (the teacher and the
# starting point): W-A-Attn 1-1-1, learnable scaling factors, qk-norm, ranking-aware + logit
# distillation, 3 epochs. The ablation rows are its children (_binary-baseline, _scaling,
# _ranking); benchmarks/bivit_ablation.py runs them all.
_base_ = './vit-mini-p4_1xb128-10e_fashion-mnist.py'
custom_imports = dict(imports=['mmext', 'projects.bivit'], allow_failed_imports=False)

float_checkpoint = 'work_dirs/vit-mini-p4_1xb128-10e_fashion-mnist/epoch_10.pth'
model = dict(
    _delete_=True,
    type='mmext.BiViT',
    classifier={{_base_.model}},
    quant=dict(type='mmext.BiViTSwap', learnable_scale=True, qk_norm=True),
    teacher=dict(config='{{fileDirname}}/vit-mini-p4_1xb128-10e_fashion-mnist.py',
                 checkpoint=float_checkpoint),
    distill=dict(
        rank=dict(type='mmext.RankingAwareAttentionLoss', top_k=8, num_samples=32,
                  loss_weight=1.0),
        logit=dict(type='mmext.LogitDistillationLoss', temperature=1.0, loss_weight=0.5)))
load_from = float_checkpoint

max_epochs = 3
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=5e-4))
train_cfg = dict(max_epochs=max_epochs)
