"""Quantized twin of mmdet's ``ConditionalAttention`` (Conditional DETR, DAB-DETR).

``ConditionalAttention`` computes attention in its method ``forward_attn`` rather than in a
child module, so its quantized twin is a subclass that overrides that method and routes the two
matmuls through a :class:`QuantizedSDPA` child. Its projections (``qcontent_proj``, ...,
``out_proj``) stay ordinary children, which the module swap turns into QLinear like any Linear.

Imported by the module swap only when a model holds a ``ConditionalAttention``, so importing
``mmext.quant`` does not import mmdet.
"""
from __future__ import annotations

import torch
from mmdet.models.layers.transformer.utils import ConditionalAttention

from .attention import QuantizedSDPA, padding_and_attention_mask


class QConditionalAttention(ConditionalAttention):
    """``ConditionalAttention`` whose q, k, v and probabilities are quantized per head.

    Args:
        embed_dims, num_heads, attn_drop, proj_drop, cross_attn, keep_query_pos: as
            ``ConditionalAttention``.
        attn_bits: bit width of q, k, v and P (1..8, or 32 for float).
    """

    def __init__(self, embed_dims: int, num_heads: int, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, cross_attn: bool = False, keep_query_pos: bool = False,
                 attn_bits: int = 8, **kwargs):
        super().__init__(embed_dims, num_heads, attn_drop, proj_drop, cross_attn,
                         keep_query_pos, **kwargs)
        self.attention = QuantizedSDPA.from_bits(num_heads, attn_bits)

    def forward_attn(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attn_mask: torch.Tensor | None = None,
                     key_padding_mask: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, L, C_qk), key (B, S, C_qk), value (B, S, E) -> output (B, L, E) and the
        head-averaged probabilities (B, L, S); C_qk is E, or 2E in cross-attention, where the
        positional part is concatenated per head. Masks as ``nn.MultiheadAttention``'s."""
        b, length, qk_dims = query.shape
        source = key.shape[1]
        if key.shape[0] != b or value.shape[:2] != (b, source) or key.shape[2] != qk_dims:
            raise ValueError(f'QConditionalAttention: query {tuple(query.shape)}, key '
                             f'{tuple(key.shape)} and value {tuple(value.shape)} do not fit')
        h = self.num_heads
        q = query.reshape(b, length, h, qk_dims // h).transpose(1, 2)
        k = key.reshape(b, source, h, qk_dims // h).transpose(1, 2)
        v = value.reshape(b, source, h, self.embed_dims // h).transpose(1, 2)
        if attn_mask is not None and attn_mask.dtype == torch.uint8:
            attn_mask = attn_mask.bool()
        if key_padding_mask is not None and not key_padding_mask.dtype.is_floating_point:
            key_padding_mask = key_padding_mask.bool()
        mask = padding_and_attention_mask(b, h, attn_mask, key_padding_mask, q.dtype)
        out, probs = self.attention(q, k, v, mask,
                                    self.attn_drop.p if self.training else 0.0,
                                    need_weights=True)
        out = self.out_proj(out.transpose(1, 2).reshape(b, length, self.embed_dims))
        return out, probs.mean(dim=1)

    @classmethod
    def from_float(cls, module: ConditionalAttention, attn_bits: int) -> QConditionalAttention:
        """The quantized twin of ``module``, its projections' weights copied."""
        q = cls(module.embed_dims, module.num_heads, module.attn_drop.p, module.proj_drop.p,
                module.cross_attn, module.keep_query_pos, attn_bits=attn_bits)
        for name, child in module._modules.items():
            if child is None:  # Conditional DETR drops qpos_proj of decoder layers 1..N-1
                setattr(q, name, None)
        missing, unexpected = q.load_state_dict(module.state_dict(), strict=False)
        if unexpected or not all(k.startswith('attention.') for k in missing):
            raise RuntimeError(f'{type(module).__name__} does not match its quantized twin: '
                               f'missing {missing}, unexpected {unexpected}')
        return q.to(module.out_proj.weight.device)
