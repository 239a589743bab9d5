"""Bi-ViT: fully binarized ViT / Swin on mmpretrain. Importing this package
registers its modules (configs: ``custom_imports=dict(imports=['mmext', 'projects.bivit'])``)."""
from .binarized_vit import BiViTSwap, HeadLayerNorm, attention_cores
from .bivit import BiViT, LogitDistillationLoss
from .diagnostics import attention_input_gradients, attention_ranking_agreement
from .distillation_token import (
    DistillationTokenViT,
    HardDistillationHead,
    add_distillation_token,
)
from .ranking import (
    RankingAwareAttentionLoss,
    drop_tokens,
    kendall_tau,
    num_extra_tokens,
    paired_attention_logits,
    record_attention_logits,
    sample_ranked_pairs,
)

__all__ = [
    'BiViTSwap', 'HeadLayerNorm', 'attention_cores', 'BiViT', 'LogitDistillationLoss',
    'DistillationTokenViT', 'HardDistillationHead', 'add_distillation_token',
    'attention_input_gradients', 'attention_ranking_agreement',
    'RankingAwareAttentionLoss', 'drop_tokens', 'kendall_tau', 'num_extra_tokens',
    'paired_attention_logits', 'record_attention_logits', 'sample_ranked_pairs',
]
