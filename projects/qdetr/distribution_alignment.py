"""Q-DETR's distribution alignment (DA, the inner level): a learnable standardisation of the
decoder queries before their quantizer.

``q* = gamma * (q - mu) / sqrt(var + eps) + beta`` over the head dimension of each query token,
gamma and beta (d,) shared across heads, initialised to 1 and 0 (methods.md §2.2). It sits in
the ``q_transform`` slot of the decoder attentions' :class:`mmext.quant.attention.QuantizedSDPA`,
after the query projection and before the q quantizer; keys and values are untouched.
"""
from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import nn

from mmext.quant.attention import QuantizedSDPA
from mmext.registry import MODELS


@MODELS.register_module()
class QueryDistributionAlignment(nn.Module):
    """Standardise q (B, H, N, d) over d with a learnable affine map (gamma, beta of size d)."""

    def __init__(self, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.head_dim, self.eps = head_dim, eps
        self.gamma = nn.Parameter(torch.ones(head_dim))
        self.beta = nn.Parameter(torch.zeros(head_dim))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        if q.shape[-1] != self.head_dim:
            raise ValueError(f'QueryDistributionAlignment for head dim {self.head_dim} got q of '
                             f'shape {tuple(q.shape)}')
        mean = q.mean(dim=-1, keepdim=True)
        var = q.var(dim=-1, keepdim=True, unbiased=False)
        return self.gamma * (q - mean) / torch.sqrt(var + self.eps) + self.beta

    def extra_repr(self) -> str:
        return f'head_dim={self.head_dim}'


def attention_owners(model: nn.Module, pattern: str) -> dict[str, QuantizedSDPA]:
    """{owner name: its QuantizedSDPA} for attention modules whose name matches pattern."""
    return {name: module.attention for name, module in model.named_modules()
            if isinstance(getattr(module, 'attention', None), QuantizedSDPA)
            and fnmatchcase(name, pattern)}


def query_head_dim(attention_owner: nn.Module) -> int:
    """Per-head width of q in an attention module holding a QuantizedSDPA: embed / heads, twice
    that in Conditional DETR's cross-attention (content and sine position concatenated)."""
    if hasattr(attention_owner, 'head_dim'):  # QMultiheadAttention
        return attention_owner.head_dim
    width = attention_owner.embed_dims // attention_owner.num_heads
    return 2 * width if getattr(attention_owner, 'cross_attn', False) else width


def add_distribution_alignment(model: nn.Module, pattern: str = 'decoder.layers.*') -> list[str]:
    """Put a QueryDistributionAlignment in the q slot of every quantized attention whose
    owner's name matches ``pattern``; returns the owners' names. Raises if none matches."""
    added = []
    for name, sdpa in attention_owners(model, pattern).items():
        module = model.get_submodule(name)
        sdpa.q_transform = QueryDistributionAlignment(query_head_dim(module)).to(
            next(module.parameters()).device)
        added.append(name)
    if not added:
        raise ValueError(f'distribution alignment pattern {pattern!r} matches no quantized '
                         'attention; quantize the decoder attention (attn_bits < 32) first')
    return added
