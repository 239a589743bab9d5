# Bi-ViT, miniature ViT on Fashion-MNIST: the full method, the last row of the ablation chain
#   _binary-baseline -> _scaling -> _qk-norm -> _distill -> this config
# i.e. W-A-Attn 1-1-1 binarization (weights, Linear inputs, q, k, v and attention probabilities;
# biases kept), learnable per-head scaling factors with zero points, qk-norm, DeiT's hard
# distillation through a distillation token, and (added here) the ranking-aware attention
# distillation, all from the real-valued teacher that is also the starting point.
#   python benchmarks/bivit_ablation.py --rows bivit
_base_ = './bivit_vit-mini-p4_1xb128-3e_fashion-mnist_distill.py'

model = dict(
    distill=dict(
        rank=dict(type='mmext.RankingAwareAttentionLoss', top_k=8, num_samples=32,
                  loss_weight=1.0)))
