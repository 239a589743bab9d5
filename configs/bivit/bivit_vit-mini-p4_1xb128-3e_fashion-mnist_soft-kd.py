# Bi-ViT, miniature ViT on Fashion-MNIST, with soft logit distillation instead of DeiT's hard
# distillation: no distillation token (the plain classifier of the _qk-norm row), the label loss
# + 0.5 KL(softmax(teacher) || softmax(student)) + the ranking-aware attention loss. An option
# beside the default (the config without a suffix), not a row of the ablation chain.
_base_ = './bivit_vit-mini-p4_1xb128-3e_fashion-mnist_qk-norm.py'

model = dict(
    teacher={{_base_.float_teacher}},
    distill=dict(
        logit=dict(type='mmext.LogitDistillationLoss', temperature=1.0, loss_weight=0.5),
        rank=dict(type='mmext.RankingAwareAttentionLoss', top_k=8, num_samples=32,
                  loss_weight=1.0)))
