# Bi-ViT Swin-T on ImageNet-1k: every Linear, q, k, v and attention probability binarized
# (W-A-Attn 1-1-1), learnable per-head scaling factors with zero points, qk-norm, and
# ranking-aware attention distillation + logit distillation from the real-valued Swin-T,
# which is also where the student starts: mmpretrain's checkpoint, 81.18 top-1 in its model
# zoo (the Swin paper reports 81.2). The recipe (./swin-tiny_16xb64-300e_in1k.py, on mmpretrain's
# Swin-T config): AdamW, lr 5e-4 x batch / 512 (1e-3 at batch 1024), weight decay 0.05,
# 5 linear warm-up epochs, cosine to epoch 300, drop-path 0.2 (Swin-T's own; Bi-ViT's code
# covers DeiT only), label smoothing 0.1, Mixup / CutMix.
#   bash tools/dist_train.sh configs/bivit/bivit_swin-tiny_16xb64-300e_in1k.py 8
_base_ = './swin-tiny_16xb64-300e_in1k.py'
custom_imports = dict(imports=['mmext', 'projects.bivit'], allow_failed_imports=False)

# mmpretrain's model zoo, kept by the user:
# https://download.openmmlab.com/mmclassification/v0/swin-transformer/swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth
float_checkpoint = 'checkpoints/swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth'
model = dict(
    _delete_=True,
    type='mmext.BiViT',
    classifier={{_base_.model}},
    quant=dict(type='mmext.BiViTSwap', learnable_scale=True, qk_norm=True),
    teacher=dict(config='mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py', checkpoint=float_checkpoint),
    distill=dict(
        rank=dict(type='mmext.RankingAwareAttentionLoss', top_k=8, num_samples=32,
                  loss_weight=1.0),
        logit=dict(type='mmext.LogitDistillationLoss', temperature=1.0, loss_weight=0.5)))
load_from = float_checkpoint
