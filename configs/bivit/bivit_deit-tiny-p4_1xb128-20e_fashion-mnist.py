# Bi-ViT DeiT-Tiny on Fashion-MNIST (patch 4 on 28 x 28): W-A-Attn 1-1-1 with learnable scaling
# factors, qk-norm and ranking-aware + logit distillation from the real-valued DeiT-Tiny of
# deit-tiny-p4_1xb128-20e_fashion-mnist.py, which is also where the student starts. Train the
# teacher first:
#   python tools/train.py configs/bivit/deit-tiny-p4_1xb128-20e_fashion-mnist.py
#   python tools/train.py configs/bivit/bivit_deit-tiny-p4_1xb128-20e_fashion-mnist.py
_base_ = './deit-tiny-p4_1xb128-20e_fashion-mnist.py'
custom_imports = dict(imports=['mmext', 'projects.bivit'], allow_failed_imports=False)

float_checkpoint = 'work_dirs/deit-tiny-p4_1xb128-20e_fashion-mnist/epoch_20.pth'
model = dict(
    _delete_=True,
    type='mmext.BiViT',
    classifier={{_base_.model}},
    quant=dict(type='mmext.BiViTSwap', learnable_scale=True, qk_norm=True),
    teacher=dict(config='{{fileDirname}}/deit-tiny-p4_1xb128-20e_fashion-mnist.py',
                 checkpoint=float_checkpoint),
    distill=dict(
        rank=dict(type='mmext.RankingAwareAttentionLoss', top_k=8, num_samples=32,
                  loss_weight=1.0),
        logit=dict(type='mmext.LogitDistillationLoss', temperature=1.0, loss_weight=0.5)))
load_from = float_checkpoint
