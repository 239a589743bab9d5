# Bi-ViT, Swin-T: the full method, the last row of the ablation chain
#   _binary-baseline -> _scaling -> _qk-norm -> _distill -> this config
# i.e. W-A-Attn 1-1-1 binarization (weights, Linear inputs, q, k, v and attention probabilities;
# biases kept), learnable per-head scaling factors with zero points, qk-norm, soft logit
# distillation (Swin has no distillation token), and (added here) the ranking-aware attention
# distillation, all from the real-valued teacher that is also the starting point.
#   bash tools/dist_train.sh configs/bivit/bivit_swin-tiny_16xb64-300e_in1k.py 8
_base_ = './bivit_swin-tiny_16xb64-300e_in1k_distill.py'

model = dict(
    distill=dict(
        rank=dict(type='mmext.RankingAwareAttentionLoss', top_k=8, num_samples=32,
                  loss_weight=1.0)))
