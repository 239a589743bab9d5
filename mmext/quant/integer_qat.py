"""Quantization-aware training with the forward product on the integer grid.

A fake-quantized layer multiplies two tensors that take only the values of their grids,
``A(x) = s (q_x - z)`` and ``Q(W) = s_w q_w``, in float32. The same product is
``s s_w[n] (sum_k q_x[m, k] q_w[n, k] - z sum_k q_w[n, k])``. The levels ``q`` are small
integers (at most 256 apart), which bfloat16 holds exactly, and a bfloat16 GEMM that sums in
float32 gives their products' sum exactly while it stays below 2^24 (4-bit: any K; 8-bit:
K up to 514, beyond which it rounds as a float32 GEMM does). So on CPUs with bfloat16 matrix
units (AMX, AVX-512 BF16) the levels' product runs as oneDNN's bfloat16 GEMM
(``torch.backends.mkldnn.matmul.fp32_precision = 'bf16'``, set for that one call and restored),
elsewhere as a float32 GEMM on the levels; the scaling and the zero point's part follow in one
pass. :func:`integer_grid_linear` computes a :class:`QLinear`'s forward that way, and its
backward as the fake-quantized layer's (float32 GEMMs on the fake-quantized values, the LSQ /
LSQ+ gradients of steps and zero points), so training follows the same formulas; only the
forward's float rounding differs (the float GEMM rounds its partial sums, the exact one does
not).

Used where ``integer_gemm`` is set on a QLinear or a 1 x 1 QConv2d (``ModuleSwap(integer_gemm=
True)`` sets it on both) and the layer qualifies (:func:`integer_grid_ready`): a per-tensor
LSQ+ input quantizer and an LSQ weight quantizer, both of 2..8 bits and initialised, float32
CPU tensors, and the compiled helpers (:func:`mmext.quant.kernels.lowbit_ops`: the input's
levels and the weight's, each with its fake-quantized copy, the scaling and the LSQ / LSQ+
backward passes, one pass each).
Anything else runs the fake-quantized path.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

from mmext.utils.machine import cpu_flags

from .fake_quantize_kernel import quantizers_backward_in_place
from .quantizers import LSQPlusQuantizer, LSQQuantizer


def _has_bf16_matrix_units() -> bool:
    """AMX-BF16 or AVX-512 BF16, where oneDNN's bfloat16 GEMM is faster than float32."""
    return bool(cpu_flags() & {'amx_bf16', 'avx512_bf16'})


@contextlib.contextmanager
def _bf16_matmul():
    """oneDNN's float32 matmuls computed in bfloat16 (summed in float32) within the block."""
    matmul = getattr(torch.backends.mkldnn, 'matmul', None)
    if matmul is None or not _has_bf16_matrix_units() or not torch.backends.mkldnn.enabled:
        yield
        return
    before = matmul.fp32_precision
    matmul.fp32_precision = 'bf16'
    try:
        yield
    finally:
        matmul.fp32_precision = before


def _ready_quantizer(quantizer, kind: type) -> bool:
    return (type(quantizer) is kind and quantizer.enabled and quantizer.observer is None
            and quantizer.initialized)


def integer_grid_ready(layer, x: Tensor) -> bool:
    """Whether ``layer`` (a QLinear, or a 1 x 1 QConv2d: :func:`is_pointwise`) can run its
    product on the integer grid for ``x``."""
    from .kernels import lowbit_ops
    a, w = layer.a_quantizer, layer.w_quantizer
    return (x.device.type == 'cpu' and x.dtype == torch.float32
            and layer.weight.dtype == torch.float32
            and _ready_quantizer(a, LSQPlusQuantizer) and a.channel_dim is None
            and _ready_quantizer(w, LSQQuantizer) and lowbit_ops() is not None)


class _IntegerGridLinear(torch.autograd.Function):
    """x (M, K), weight (N, K) -> (M, N); see the module docstring."""

    @staticmethod
    def forward(ctx, x, weight, bias, a_scale, a_zero, w_scale, a_grid, w_grid, ops):
        (qn, qp, a_factor), (wqn, wqp, w_factor) = a_grid, w_grid
        x, weight = x.contiguous(), weight.contiguous()   # the backward pass reads them dense
        s, z = float(a_scale), float(a_zero)
        n = weight.shape[0]
        levels, x_fake = ops.lsq_input_forward(x, s, z, qn, qp)          # (M, K) each
        w_levels, w_fake, w_level_sum = ops.lsq_weight_forward(weight, w_scale, wqn, wqp)
        with _bf16_matmul():
            acc = F.linear(levels, w_levels).contiguous()
        out = ops.int_epilogue(
            acc, -z, w_level_sum[None], (a_scale * w_scale).expand(n).contiguous(),
            bias if bias is not None else x.new_zeros(n), True)
        ctx.save_for_backward(x, x_fake, weight, w_fake, a_scale, a_zero, w_scale)
        ctx.grid, ctx.w_grid = (qn, qp, a_factor), (wqn, wqp, w_factor)
        ctx.has_bias, ctx.ops = bias is not None, ops
        return out

    @staticmethod
    def backward(ctx, grad):
        x, x_fake, weight, w_fake, a_scale, a_zero, w_scale = ctx.saved_tensors
        qn, qp, a_factor = ctx.grid
        wqn, wqp, w_factor = ctx.w_grid
        grad = grad.contiguous()
        # the fake-quantized layer's products (on its values: (level - z) * s, s_w level_w)
        grad_x_q = grad @ w_fake
        grad_w_q = grad.t() @ x_fake
        # LSQ+ on the input (one step) and LSQ on the weight (one step, or one per output
        # channel): the one-pass quantizers' backward, written over the product gradients
        rows = w_scale.numel()
        grad_x, grad_w, grad_a_scale, grad_a_zero, grad_w_scale = quantizers_backward_in_place(
            ctx.ops, grad_x_q, x, a_scale, a_zero, (qn, qp, a_factor, (1, 1, x.numel())),
            grad_w_q, weight, w_scale, (wqn, wqp, w_factor, (1, rows, weight.numel() // rows)))
        grad_bias = grad.sum(0) if ctx.has_bias else None
        return grad_x, grad_w, grad_bias, grad_a_scale, grad_a_zero, grad_w_scale, None, None, \
            None


def _integer_grid_rows(layer, rows: Tensor, weight: Tensor, x: Tensor) -> Tensor:
    """rows (M, K) through ``layer``'s quantizers and weight (N, K) -> (M, N); ``x`` is the
    layer's input (its quantizer's gradient factor)."""
    from .kernels import lowbit_ops
    a, w = layer.a_quantizer, layer.w_quantizer
    return _IntegerGridLinear.apply(
        rows, weight, layer.bias, a.scale, a.zero_point, w.scale,
        (a.qn, a.qp, a.gradient_factor(x)), (w.qn, w.qp, w.gradient_factor(layer.weight)),
        lowbit_ops())


def integer_grid_linear(layer, x: Tensor) -> Tensor:
    """``layer(x)`` of a QLinear (x (..., K) -> (..., N)) with its forward product on the
    integer grid; call where :func:`integer_grid_ready` is true."""
    out = _integer_grid_rows(layer, x.reshape(-1, layer.in_features), layer.weight, x)
    return out.reshape(*x.shape[:-1], layer.out_features)


def is_pointwise(conv) -> bool:
    """A 1 x 1 convolution that is a Linear over the channels of every pixel."""
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
            and conv.dilation == (1, 1) and conv.padding in ((0, 0), 'valid'))


def integer_grid_pointwise_conv(layer, x: Tensor) -> Tensor:
    """``layer(x)`` of a 1 x 1 QConv2d (x (B, C, H, W) -> (B, N, H, W)) with its forward product
    on the integer grid, as a Linear over the pixels; the output is channels-last in memory (no
    copy where the input is channels-last already, as the output then feeds the next layer)."""
    b, c, h, w = x.shape
    n = layer.out_channels
    rows = x.permute(0, 2, 3, 1).reshape(-1, c)
    out = _integer_grid_rows(layer, rows, layer.weight.view(n, c), x)
    return out.view(b, h, w, n).permute(0, 3, 1, 2)
