"""Bi-ViT: fully binarized ViT / Swin on mmpretrain (methods.md §3). Importing this package
registers its modules (configs: ``custom_imports=dict(imports=['mmext', 'projects.bivit'])``)."""
from .binarized_vit import BiViTSwap, HeadLayerNorm, attention_cores
from .bivit import BiViT, LogitDistillationLoss
from .diagnostics import attention_input_gradients, attention_ranking_agreement
from .ranking import (
    RankingAwareAttentionLoss,
    kendall_tau,
    record_attention_logits,
    sample_ranked_pairs,
)

__all__ = [
    'BiViTSwap', 'HeadLayerNorm', 'attention_cores', 'BiViT', 'LogitDistillationLoss',
    'attention_input_gradients', 'attention_ranking_agreement',
    'RankingAwareAttentionLoss', 'kendall_tau', 'record_attention_logits', 'sample_ranked_pairs',
]
