"""Quantized twin of Swin's window attention, ``WindowMSA`` of mmpretrain (and the same class
of mmseg's and mmdet's Swin backbones, which hold the same attributes and weights).

``WindowMSA`` multiplies q, k and v in its own ``forward``, so its twin is a subclass whose
forward routes both matmuls through a :class:`QuantizedSDPA` child, with the relative position
bias (and the shifted-window mask) as an additive float mask. ``qkv`` and ``proj`` stay ordinary
children, which the module swap turns into QLinear. Imported by the swap only when a model holds
a ``WindowMSA``.
"""
from __future__ import annotations

import torch
from mmpretrain.models.utils.attention import WindowMSA
from torch import nn

from .attention import QuantizedSDPA


class QWindowMSA(WindowMSA):
    """``WindowMSA`` whose q, k, v and probabilities are quantized per head.

    Args:
        embed_dims, window_size, num_heads, qkv_bias, qk_scale, attn_drop, proj_drop: as
            ``WindowMSA``.
        attn_bits: bit width of q, k, v and P (1..8, or 32 for float).
    """

    def __init__(self, embed_dims, window_size, num_heads, qkv_bias=True, qk_scale=None,
                 attn_drop=0.0, proj_drop=0.0, attn_bits: int = 8, **kwargs):
        super().__init__(embed_dims, window_size, num_heads, qkv_bias, qk_scale, attn_drop,
                         proj_drop, **kwargs)
        self.attention = QuantizedSDPA.from_bits(num_heads, attn_bits)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (num_windows * B, N, C) -> (num_windows * B, N, C); mask (num_windows, N, N) with
        values in (-inf, 0], as ``WindowMSA``'s."""
        b_, n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).reshape(b_, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        area = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(area, area, h).permute(2, 0, 1)[None]  # (1, H, N, N)
        if mask is not None:
            windows = mask.shape[0]
            bias = (bias + mask[:, None]).repeat(b_ // windows, 1, 1, 1)  # (B_, H, N, N)
        out = self.attention(q, k, v, bias, self.attn_drop.p if self.training else 0.0,
                             scale=self.scale)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b_, n, c)))

    @classmethod
    def from_float(cls, module: nn.Module, attn_bits: int) -> QWindowMSA:
        """The quantized twin of ``module``, its weights and position bias copied."""
        q = cls(module.embed_dims, module.window_size, module.num_heads,
                module.qkv.bias is not None, module.scale, module.attn_drop.p,
                module.proj_drop.p, attn_bits=attn_bits)
        missing, unexpected = q.load_state_dict(module.state_dict(), strict=False)
        if unexpected or not all(k.startswith('attention.') for k in missing):
            raise RuntimeError(f'WindowMSA does not match its quantized twin: missing {missing}, '
                               f'unexpected {unexpected}')
        return q.to(module.proj.weight.device)
