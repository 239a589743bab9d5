"""Bi-ViT: fully binarized ViT / Swin on mmpretrain (methods.md §3). Importing this package
registers its modules (configs: ``custom_imports=dict(imports=['mmext', 'projects.bivit'])``)."""
from .binarized_vit import BiViTSwap, HeadLayerNorm, attention_cores
from .bivit import BiViT, LogitDistillationLoss
from .ranking import (
    RankingAwareAttentionLoss,
    kendall_tau,
    record_attention_logits,
    sample_ranked_pairs,
)

__all__ = [
    'BiViTSwap', 'HeadLayerNorm', 'attention_cores', 'BiViT', 'LogitDistillationLoss',
    'RankingAwareAttentionLoss', 'kendall_tau', 'record_attention_logits', 'sample_ranked_pairs',
]
