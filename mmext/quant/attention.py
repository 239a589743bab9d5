"""Quantized attention.

:class:`QuantizedSDPA` is the core every quantized attention here shares: per-head quantizers on
q, k, v (B, H, N, d, signed) and on the attention probabilities P (B, H, L, S, unsigned), so
the two activation-activation matmuls ``q k^T`` and ``P v`` run on low-bit operands; softmax
stays float. It has hook points for the methods built on it: ``q_transform`` / ``k_transform``
(identity; Q-DETR's distribution alignment, Bi-ViT's per-head qk LayerNorm) and ``logits``
(identity on the pre-softmax logits (B, H, L, S), where distillation recorders attach).

It serves three attention implementations:

- ``torch.nn.MultiheadAttention`` (mmdet's DETR, through mmcv's wrapper ``.attn``) becomes
  :class:`QMultiheadAttention`, a drop-in whose projections are :class:`QLinear`;
- mmpretrain's ``MultiheadAttention`` computes through its attribute
  ``scaled_dot_product_attention``; the swap sets a :class:`QuantizedSDPA` there;
- mmdet's ``ConditionalAttention`` (Conditional / DAB-DETR) becomes ``QConditionalAttention``
  (:mod:`mmext.quant.detr_attention`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmext.registry import MODELS

from .layers import QLinear, activation_quantizer_cfg, build_quantizer, weight_quantizer_cfg
from .quantizers import LearnableScaleBinarizer


def _attention_quantizer_cfg(bits: int, signed: bool) -> dict | None:
    """Per-head quantizer of q, k, v (signed) or of the probabilities (unsigned): LSQ+ for 2..8
    bits, Bi-ViT's learnable-scale binarizer for 1 bit, None for 32."""
    if bits == 1:
        return dict(type='LearnableScaleBinarizer',
                    zero_point_init='zero' if signed else 'uniform_attention')
    cfg = activation_quantizer_cfg(bits)
    if cfg is not None and cfg['type'] == 'LSQPlusQuantizer':
        cfg['signed'] = signed
        del cfg['per_channel']  # always per head
    return cfg


def attention_quantizer_cfgs(bits: int) -> dict:
    """``qkv_quantizer`` and ``prob_quantizer`` configs for an attention bit width."""
    return dict(qkv_quantizer=_attention_quantizer_cfg(bits, signed=True),
                prob_quantizer=_attention_quantizer_cfg(bits, signed=False))


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """nn.MultiheadAttention's mask conventions (bool True = masked out, or additive floats)
    as additive floats."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float('-inf'))
    return mask.to(dtype)


def with_sdpa_mask(logits: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
    """``logits`` plus an SDPA-style ``attn_mask``, whose boolean masks mark what takes part
    (True), unlike nn.MultiheadAttention's, and whose float masks add."""
    if attn_mask is None:
        return logits
    return logits + additive_mask(~attn_mask if attn_mask.dtype == torch.bool else attn_mask,
                                  logits.dtype)


def binary_product(a: torch.Tensor, b: torch.Tensor, za: torch.Tensor, zb: torch.Tensor,
                   scale: torch.Tensor) -> torch.Tensor:
    """``sum_k (sign(a_k) - za)(sign(b_k) - zb) * scale`` (B, H, M, N) of binarizer levels a
    (B, H, M, K) and b (B, H, N, K) (sign: +1 where >= 0), with za, zb and scale per head
    (1, H, 1, 1), computed as ``((dot - zb sum_a) - za sum_b + K za zb) * scale`` from the
    integer dot and sign sums: the rounding of the low-bit runtime (whose kernels give these
    floats bit for bit), where a product that is exactly 0 comes out 0."""
    sa, sb = (torch.where(t >= 0, 1.0, -1.0) for t in (a, b))
    dots = (sa.double() @ sb.double().transpose(-2, -1)).float()
    k = a.shape[-1]
    total = dots - zb * sa.sum(-1, keepdim=True) - za * sb.sum(-1)[..., None, :] + k * za * zb
    return total * scale


class QuantizedSDPA(nn.Module):
    """Scaled dot-product attention on quantized q, k, v and probabilities.

    Call signature of ``torch.nn.functional.scaled_dot_product_attention``: q (B, H, L, d),
    k (B, H, S, d), v (B, H, S, d_v) -> (B, H, L, d_v); with ``need_weights=True`` it returns
    ``(output, P)`` with the quantized probabilities P (B, H, L, S). Boolean masks follow SDPA
    (True takes part), float masks are added to the logits.

    Args:
        num_heads: H, the number of per-head scale groups.
        qkv_quantizer: config of the quantizer of q, k and v (one instance each, per head).
        prob_quantizer: config of the quantizer of P (per head, unsigned).
    """

    def __init__(self, num_heads: int, qkv_quantizer: dict | None = None,
                 prob_quantizer: dict | None = None):
        super().__init__()
        self.num_heads = num_heads

        def per_head(cfg):
            return build_quantizer(cfg, num_channels=num_heads, channel_dim=1) if cfg else \
                nn.Identity()

        self.q_transform, self.k_transform = nn.Identity(), nn.Identity()
        self.q_quantizer = per_head(qkv_quantizer)
        self.k_quantizer = per_head(qkv_quantizer)
        self.v_quantizer = per_head(qkv_quantizer)
        self.logits = nn.Identity()
        self.prob_quantizer = per_head(prob_quantizer)

    @classmethod
    def from_bits(cls, num_heads: int, bits: int) -> QuantizedSDPA:
        """The default quantizers for ``bits``: LSQ+ for 2..8, learnable-scale binarizer for 1,
        float for 32."""
        return cls(num_heads, **attention_quantizer_cfgs(bits))

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                is_causal: bool = False, scale: float | None = None,
                need_weights: bool = False):
        if is_causal:
            raise ValueError('QuantizedSDPA does not implement is_causal; pass attn_mask')
        if query.dim() != 4 or query.shape[1] != self.num_heads:
            raise ValueError(f'QuantizedSDPA with {self.num_heads} heads expects q of shape '
                             f'(B, {self.num_heads}, L, d), got {tuple(query.shape)}')
        if self._exact_binary():
            return self._binary_forward(query, key, value, attn_mask, scale, need_weights)
        q = self.q_quantizer(self.q_transform(query))
        k = self.k_quantizer(self.k_transform(key))
        v = self.v_quantizer(value)
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        logits = with_sdpa_mask(self.logits(q @ k.transpose(-2, -1) * scale), attn_mask)
        probs = self.prob_quantizer(logits.softmax(dim=-1))
        out = F.dropout(probs, dropout_p, self.training) @ v
        return (out, probs) if need_weights else out

    def _exact_binary(self) -> bool:
        """Fully binary attention (q, k, v and P on learnable-scale binarizers, a step per head
        or one for all) evaluated without gradients, with every step initialised."""
        quantizers = (self.q_quantizer, self.k_quantizer, self.v_quantizer, self.prob_quantizer)
        return (not self.training and not torch.is_grad_enabled()
                and all(isinstance(q, LearnableScaleBinarizer) and q.channel_dim in (None, 1)
                        and not q._needs_init() for q in quantizers))

    def _binary_forward(self, query, key, value, attn_mask, scale, need_weights):
        """The two products of fully binary attention on their integer dot products
        (:func:`binary_product`) instead of a float GEMM of the binarized tensors, whose
        rounding leaves a product that is exactly 0 (common: sums of +-1) as +-1e-9, so that
        the next layer's sign binarizer read it either way; the low-bit runtime computes them
        the same way, and so gives these outputs. The same values up to that rounding."""
        def levels(x, quantizer):
            s, z = (t.view(1, -1, 1, 1) for t in (quantizer.scale, quantizer.zero_point))
            return x / s + z, s, z
        (q, sq, zq), (k, sk, zk), (v, sv, zv) = (
            levels(x, quantizer) for x, quantizer in (
                (self.q_transform(query), self.q_quantizer),
                (self.k_transform(key), self.k_quantizer), (value, self.v_quantizer)))
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        logits = with_sdpa_mask(self.logits(binary_product(q, k, zq, zk, sq * sk * scale)),
                                attn_mask)
        probs = logits.softmax(dim=-1)
        p, sp, zp = levels(probs, self.prob_quantizer)
        out = binary_product(p, v.transpose(-2, -1), zp, zv, sp * sv)
        return (out, self.prob_quantizer(probs)) if need_weights else out


def padding_and_attention_mask(batch: int, num_heads: int, attn_mask: torch.Tensor | None,
                               key_padding_mask: torch.Tensor | None,
                               dtype: torch.dtype) -> torch.Tensor | None:
    """nn.MultiheadAttention's ``attn_mask`` ((L, S) or (B * H, L, S)) and
    ``key_padding_mask`` ((B, S)), True = masked out, as one additive mask broadcastable to
    (B, H, L, S)."""
    mask = additive_mask(attn_mask, dtype)
    if mask is not None and mask.dim() == 3:
        mask = mask.view(batch, num_heads, *mask.shape[-2:])
    padding = additive_mask(key_padding_mask, dtype)
    if padding is not None:
        padding = padding[:, None, None, :]
        mask = padding if mask is None else mask + padding
    return mask


@MODELS.register_module()
class QMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with quantized projections, q, k, v and probabilities.

    Args:
        embed_dim, num_heads, dropout, bias, batch_first: as ``nn.MultiheadAttention``.
        w_quantizer, a_quantizer: configs of the projections' weight and input quantizers.
        qkv_quantizer: config of the per-head quantizer of q, k and v (signed).
        prob_quantizer: config of the per-head quantizer of P (unsigned).
    """

    # nn.TransformerEncoderLayer probes these before taking its fused inference path, which
    # would bypass the quantizers; these values make it take the ordinary path through forward.
    in_proj_bias = None
    _qkv_same_embed_dim = False

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, w_quantizer: dict | None = None,
                 a_quantizer: dict | None = None, qkv_quantizer: dict | None = None,
                 prob_quantizer: dict | None = None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f'embed_dim {embed_dim} is not divisible by num_heads {num_heads}')
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        proj = dict(w_quantizer=w_quantizer, a_quantizer=a_quantizer)
        self.q_proj = QLinear(embed_dim, embed_dim, bias, **proj)
        self.k_proj = QLinear(embed_dim, embed_dim, bias, **proj)
        self.v_proj = QLinear(embed_dim, embed_dim, bias, **proj)
        self.attention = QuantizedSDPA(num_heads, qkv_quantizer, prob_quantizer)
        self.out_proj = QLinear(embed_dim, embed_dim, bias, **proj)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, E) -> (B, H, N, d)."""
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Read ``nn.MultiheadAttention``'s packed ``in_proj_weight`` / ``in_proj_bias`` as the
        q, k and v projections, so that a float checkpoint loads into the quantized model."""
        for kind in ('weight', 'bias'):
            packed = state_dict.pop(f'{prefix}in_proj_{kind}', None)
            if packed is not None:
                for proj, part in zip(('q_proj', 'k_proj', 'v_proj'), packed.chunk(3)):
                    state_dict[f'{prefix}{proj}.{kind}'] = part
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (L, B, E) or (B, L, E) with ``batch_first``; key, value (S, B, E) likewise.

        Returns the output in the query's layout and, if ``need_weights``, the attention
        probabilities (B, L, S) averaged over heads or (B, H, L, S).
        """
        if is_causal and attn_mask is None:
            raise ValueError('is_causal=True needs attn_mask, as in nn.MultiheadAttention')
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, length, _ = query.shape
        mask = padding_and_attention_mask(b, self.num_heads, attn_mask, key_padding_mask,
                                          query.dtype)
        out, probs = self.attention(
            self._heads(self.q_proj(query)), self._heads(self.k_proj(key)),
            self._heads(self.v_proj(value)), mask, self.dropout if self.training else 0.0,
            need_weights=True)  # (B, H, L, d), (B, H, L, S)
        out = self.out_proj(out.transpose(1, 2).reshape(b, length, self.embed_dim))
        if not self.batch_first:
            out = out.transpose(0, 1)
        weights = None
        if need_weights:
            weights = probs.mean(dim=1) if average_attn_weights else probs
        return out, weights

    @classmethod
    def from_float(cls, mha: nn.MultiheadAttention, w_bits: int = 32, a_bits: int = 32,
                   attn_bits: int = 32, w_granularity: str = 'channel',
                   a_granularity: str = 'tensor') -> QMultiheadAttention:
        """The quantized twin of ``mha`` at the bit spec ``w_bits``-``a_bits``-``attn_bits``
        (e.g. 4-4-8), with its projection weights and biases copied; the projections' weight
        and input steps per ``w_granularity`` / ``a_granularity`` ('tensor' or 'channel')."""
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError('QMultiheadAttention converts nn.MultiheadAttention with '
                             'kdim == vdim == embed_dim, no add_bias_kv and no add_zero_attn')
        q = cls(mha.embed_dim, mha.num_heads, mha.dropout, mha.in_proj_bias is not None,
                mha.batch_first, w_quantizer=weight_quantizer_cfg(w_bits, w_granularity),
                a_quantizer=activation_quantizer_cfg(a_bits, a_granularity),
                **attention_quantizer_cfgs(attn_bits))
        q = q.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        with torch.no_grad():
            weights = mha.in_proj_weight.chunk(3)
            biases = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None, ) * 3
            for proj, w, b in zip((q.q_proj, q.k_proj, q.v_proj), weights, biases):
                proj.weight.copy_(w)
                if b is not None:
                    proj.bias.copy_(b)
            q.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                q.out_proj.bias.copy_(mha.out_proj.bias)
        return q
