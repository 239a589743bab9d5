"""Theoretical acceleration accounting: multiply-accumulates per layer and their bit widths.

``count_macs(model, *inputs)`` runs one forward pass with hooks and returns one
:class:`LayerMACs` per matmul-like operation: Linear and Conv2d layers (quantized or not) and
the two activation-activation matmuls of attention (``q k^T`` and ``P v``). Reductions of those
records under a named convention give the OPs:

- ``bireal64`` (Bi-Real Net, ReActNet): a MAC whose operands both have at most 8 bits costs
  ``b_w * b_a / 64`` FLOP (a 64-bit word holds 64 XNOR-popcount 1-bit MACs); any other MAC
  costs 1 FLOP. W1A1 is 64x cheaper than float, W4A4 4x.
- ``linear32``: a low-bit MAC costs ``max(b_w, b_a) / 32`` FLOP; W4A4 is 8x cheaper.

FLOPs count 1 per MAC (the fvcore convention behind "DETR-R50: 86 GFLOPs").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import QuantizedSDPA
from .calibration import passthrough
from .quantizers import FULL_PRECISION
from .swap import _method_attention_twin

CONVENTIONS = ('bireal64', 'linear32')


@dataclass
class LayerMACs:
    """One counted operation: ``macs`` multiply-accumulates with operands of ``w_bits`` (the
    weight, or the second activation of a matmul) and ``a_bits`` (the input)."""

    name: str
    op: str
    macs: int
    w_bits: int
    a_bits: int

    @property
    def low_bit(self) -> bool:
        return max(self.w_bits, self.a_bits) <= 8

    def ops(self, convention: str = 'bireal64') -> float:
        """The cost in FLOP-equivalents under ``convention``."""
        if convention not in CONVENTIONS:
            raise ValueError(f'unknown convention {convention!r}; choose one of {CONVENTIONS}')
        if not self.low_bit:
            return float(self.macs)
        if convention == 'bireal64':
            return self.macs * self.w_bits * self.a_bits / 64
        return self.macs * max(self.w_bits, self.a_bits) / 32


def _bits(quantizer: nn.Module | None) -> int:
    return getattr(quantizer, 'bits', FULL_PRECISION) if quantizer is not None else \
        FULL_PRECISION


def _attention_matmuls(name: str, batch: int, heads: int, length: int, source: int,
                       head_dim: int, qkv_bits: int, prob_bits: int,
                       value_dim: int | None = None) -> list[LayerMACs]:
    """``q k^T`` (B H L S d MACs, q and k operands) and ``P v`` (B H L S d_v, P and v)."""
    value_dim = head_dim if value_dim is None else value_dim
    return [LayerMACs(f'{name}[q@k]', 'matmul', batch * heads * length * source * head_dim,
                      qkv_bits, qkv_bits),
            LayerMACs(f'{name}[P@v]', 'matmul', batch * heads * length * source * value_dim,
                      qkv_bits, prob_bits)]


def _query_key(module: nn.Module, args: tuple, kwargs: dict):
    """The query (B, L, E) and key (B, S, E) of a MultiheadAttention call, batch first."""
    query = kwargs['query'] if 'query' in kwargs else args[0]
    key = kwargs['key'] if 'key' in kwargs else args[1]
    if not module.batch_first:
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    return query, key


def count_macs(model: nn.Module, *inputs, **kwargs) -> list[LayerMACs]:
    """Run ``model(*inputs, **kwargs)`` once under ``torch.no_grad`` and count its MACs (the
    LSQ / LSQ+ quantizers pass their inputs unchanged, so an uncalibrated model counts too).

    Counted: ``nn.Linear`` / ``nn.Conv2d`` and subclasses (QLinear, QConv2d, mmcv's wrappers),
    ``nn.MultiheadAttention`` (its projections and matmuls, which run outside its children's
    forward), :class:`QuantizedSDPA` matmuls (in every quantized attention), and the float
    matmuls of mmpretrain-style attention that computes through
    ``scaled_dot_product_attention``, of mmdet's ``ConditionalAttention`` and of mmpretrain's
    Swin ``WindowMSA``.
    """
    records: list[LayerMACs] = []
    handles = []

    def linear_hook(name):
        def hook(module, args, output):
            records.append(LayerMACs(name, 'linear', output.numel() * module.in_features,
                                     _bits(getattr(module, 'w_quantizer', None)),
                                     _bits(getattr(module, 'a_quantizer', None))))
        return hook

    def conv_hook(name):
        def hook(module, args, output):
            kh, kw = module.kernel_size
            macs = output.numel() * module.in_channels // module.groups * kh * kw
            records.append(LayerMACs(name, 'conv', macs,
                                     _bits(getattr(module, 'w_quantizer', None)),
                                     _bits(getattr(module, 'a_quantizer', None))))
        return hook

    def float_mha_hook(name):
        def hook(module, args, kwargs, output):
            query, key = _query_key(module, args, kwargs)
            (b, length, e), source = query.shape, key.shape[1]
            records.extend([
                LayerMACs(f'{name}.in_proj[q]', 'linear', b * length * e * e, 32, 32),
                LayerMACs(f'{name}.in_proj[k,v]', 'linear', 2 * b * source * e * e, 32, 32),
                LayerMACs(f'{name}.out_proj', 'linear', b * length * e * e, 32, 32)])
            records.extend(_attention_matmuls(name, b, module.num_heads, length, source,
                                              e // module.num_heads, 32, 32))
        return hook

    def sdpa_hook(name):
        def hook(module, args, output):
            q, k, v = args[:3]
            b, h, length, d = q.shape
            records.extend(_attention_matmuls(name, b, h, length, k.shape[2], d,
                                              _bits(module.q_quantizer),
                                              _bits(module.prob_quantizer), v.shape[-1]))
        return hook

    def counted_forward_attn(name, forward_attn):
        # mmdet's float ConditionalAttention multiplies in its method forward_attn(query
        # (B, L, C_qk), key (B, S, C_qk), value (B, S, E), ...), C_qk = 2E in cross-attention.
        def wrapper(query, key, value, *args, **kwargs):
            (b, length, qk_dims), source = query.shape, key.shape[1]
            records.extend([
                LayerMACs(f'{name}[q@k]', 'matmul', b * length * source * qk_dims, 32, 32),
                LayerMACs(f'{name}[P@v]', 'matmul', b * length * source * value.shape[-1], 32,
                          32)])
            return forward_attn(query, key, value, *args, **kwargs)
        return wrapper

    def float_window_hook(name):
        def hook(module, args, output):
            b, n, c = args[0].shape  # mmpretrain's WindowMSA: (num_windows * B, N, C)
            records.extend(_attention_matmuls(name, b, module.num_heads, n, n,
                                              c // module.num_heads, 32, 32))
        return hook

    def float_sdpa_hook(name):
        def hook(module, args, output):
            x = args[0]  # (B, N, C): mmpretrain's MultiheadAttention
            b, n, _ = x.shape
            records.extend(_attention_matmuls(name, b, module.num_heads, n, n,
                                              module.embed_dims // module.num_heads, 32, 32))
        return hook

    patched = []
    for name, module in model.named_modules():
        twin = _method_attention_twin(module)  # float (quantized: counted by its QuantizedSDPA)
        if twin is not None and twin.endswith('QConditionalAttention'):
            module.forward_attn = counted_forward_attn(name, module.forward_attn)
            patched.append(module)
        elif twin is not None and twin.endswith('QWindowMSA'):
            handles.append(module.register_forward_hook(float_window_hook(name)))
        if isinstance(module, nn.Linear) and not _inside_float_mha(name, model):
            handles.append(module.register_forward_hook(linear_hook(name)))
        elif isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook(name)))
        elif isinstance(module, nn.MultiheadAttention):
            handles.append(module.register_forward_hook(float_mha_hook(name), with_kwargs=True))
        elif isinstance(module, QuantizedSDPA):
            handles.append(module.register_forward_hook(sdpa_hook(name)))
        elif callable(module.__dict__.get('scaled_dot_product_attention')):
            handles.append(module.register_forward_hook(float_sdpa_hook(name)))
    try:
        with torch.no_grad(), passthrough(model):  # shapes count, not steps: none is needed
            model(*inputs, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
        for module in patched:
            del module.forward_attn
    return records


def _inside_float_mha(name: str, model: nn.Module) -> bool:
    """``out_proj`` of an ``nn.MultiheadAttention`` never runs its own forward."""
    parent = name.rpartition('.')[0]
    return bool(parent) and isinstance(model.get_submodule(parent), nn.MultiheadAttention)


def summarize_ops(records: list[LayerMACs], convention: str = 'bireal64') -> dict:
    """Totals: FLOPs (full-precision MACs), BOPs (sum of b_w * b_a over low-bit MACs), OPs under
    ``convention``, and all MACs."""
    flops = sum(r.macs for r in records if not r.low_bit)
    bops = sum(r.macs * r.w_bits * r.a_bits for r in records if r.low_bit)
    return dict(convention=convention, macs=sum(r.macs for r in records), flops=flops,
                bops=bops, ops=sum(r.ops(convention) for r in records))


def parameter_bits(model: nn.Module) -> tuple[int, int]:
    """(number of parameters, their storage in bits): weights of quantized layers at their
    quantizer's width, everything else (biases, norms, scales, float layers) at 32 bits."""
    count = bits = 0
    for module in model.modules():
        w_bits = _bits(getattr(module, 'w_quantizer', None))
        for name, param in module.named_parameters(recurse=False):
            count += param.numel()
            bits += param.numel() * (w_bits if name == 'weight' else FULL_PRECISION)
    return count, bits


def format_ops_table(records: list[LayerMACs], convention: str = 'bireal64') -> str:
    """One line per counted operation: MACs, operand bits and OPs under ``convention``."""
    width = max([len(r.name) for r in records] + [6])
    lines = [f"{'module':<{width}}  {'op':<6}  {'MACs (M)':>10}  W   A   {'OPs (M)':>10}"]
    for r in records:
        lines.append(f'{r.name:<{width}}  {r.op:<6}  {r.macs / 1e6:>10.3f}  {r.w_bits:<2}  '
                     f'{r.a_bits:<2}  {r.ops(convention) / 1e6:>10.3f}')
    return '\n'.join(lines)
