"""LSQ / LSQ+ fake quantization in one compiled CPU pass each way.

:func:`kernel_fake_quantize` computes ``s * (round(clamp(x / s + z, Qn, Qp)) - z)`` (no ``z``
for LSQ) with the low-bit extension (:func:`mmext.quant.kernels.lowbit_ops`): the forward is one
AVX-512 pass over ``x`` with the eager quantizer's float operations in its order, so the values
are equal to :class:`mmext.quant.quantizers._FakeQuantize`'s; the backward is one pass over the
gradient and ``x`` that gives the input's gradient and, per step group, the sums of the step's
and the zero point's gradients (float64 across pieces of the tensor, float32 within a piece, so
these differ from eager's float32 sums by rounding only).

A step group is one scale (and zero point) along one dimension of ``x``: per tensor, per
channel of a weight, per head of a (B, H, N, d) attention tensor, per input channel. The pass
reads ``x`` in memory order as (outer, groups, inner), so transposed views (the heads of
``x.view(B, N, H, d).transpose(1, 2)``) need no copy; with inner = 1 (the groups last in
memory) it runs along rows of steps.

``fake_quantize(..., fused=True)`` takes this path for float32 CPU tensors where the extension
is built (:func:`kernel_layout` says whether a layout qualifies) and ``torch.compile``
elsewhere.

A QLinear or QConv2d whose LSQ+ input quantizer and LSQ weight quantizer both take this path
(initialised, ``fused=True``) runs as one autograd node, :func:`fused_fake_quantized_linear` /
:func:`fused_fake_quantized_conv2d`: the two passes and the product forward, and backward the
product's gradients (the GEMMs or ``aten.convolution_backward`` that autograd would call) with
the two quantizers' backward passes written over them in place. The values and gradients are
the separate quantizers' bit for bit; the step saves the autograd nodes of the quantizers and
of their parameters' broadcast views, and the memory of the input's and the weight's
gradients.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_INNER = 16  # the pass runs 16 elements with one step (or a row of steps: inner 1) at a
SMALL = 16384   # time, and other rows shorter than that only in small tensors (depthwise weights)


def _dense_order(x: Tensor) -> list[int] | None:
    """The dimensions of size > 1 from the slowest to the fastest in memory, or None where
    ``x`` is not dense (gaps, overlaps, broadcast strides)."""
    order = sorted((d for d in range(x.dim()) if x.shape[d] != 1), key=lambda d: -x.stride(d))
    expected = 1
    for d in reversed(order):
        if x.stride(d) != expected:
            return None
        expected *= x.shape[d]
    return order


def _group_dim(x: Tensor, s: Tensor) -> int | None | bool:
    """The dimension along which ``s`` (broadcast against ``x``) varies, None for one step for
    all, False where it varies along several."""
    if s.numel() == 1:
        return None
    if s.dim() != x.dim():
        return False
    dims = [d for d in range(x.dim()) if s.shape[d] != 1]
    return dims[0] if len(dims) == 1 and s.shape[dims[0]] == x.shape[dims[0]] else False


def kernel_layout(x: Tensor, s: Tensor, z: Tensor | None
                  ) -> tuple[Tensor, tuple[int, int, int]] | None:
    """``x`` as the compiled pass reads it (itself where dense in memory, else a contiguous
    copy: the q, k and v slices of a fused qkv projection) and its (outer, groups, inner) in
    memory order; None where the pass does not apply (not float32 on the CPU, steps varying
    along several dimensions or every few elements in memory, no extension)."""
    from .kernels import lowbit_ops
    tensors = (x, s) if z is None else (x, s, z)
    if any(t.device.type != 'cpu' or t.dtype != torch.float32 for t in tensors):
        return None
    if x.numel() == 0 or (z is not None and z.shape != s.shape):
        return None
    dim = _group_dim(x, s)
    if dim is False or lowbit_ops() is None:
        return None
    order = _dense_order(x)
    if order is None:
        x = x.contiguous()
        order = _dense_order(x)
    if dim is None or x.shape[dim] == 1:
        return x, (1, 1, x.numel())
    p = order.index(dim)
    inner = math.prod(x.shape[d] for d in order[p + 1:])
    if 1 < inner < MIN_INNER and x.numel() > SMALL:
        return None  # the step changes every few elements: torch.compile's
    return x, (math.prod(x.shape[d] for d in order[:p]), x.shape[dim], inner)


class _KernelFakeQuantize(torch.autograd.Function):
    """See the module docstring; ``x`` and ``groups`` from :func:`kernel_layout`."""

    @staticmethod
    def forward(ctx, x, s, z, qn, qp, grad_factor, groups, ops):
        ctx.save_for_backward(x, s, z)
        ctx.args = (qn, qp, grad_factor, groups, ops)
        return ops.fake_quantize_groups(x, s, z, qn, qp, *groups)

    @staticmethod
    def backward(ctx, grad):
        x, s, z = ctx.saved_tensors
        qn, qp, factor, groups, ops = ctx.args
        grad_x, grad_s, grad_z = ops.fake_quantize_groups_backward(grad, x, s, z, qn, qp,
                                                                   *groups, factor)
        return grad_x, grad_s, grad_z, None, None, None, None, None


def kernel_fake_quantize(x: Tensor, s: Tensor, z: Tensor | None, qn: int, qp: int,
                         grad_factor: float, groups: tuple[int, int, int]) -> Tensor:
    """``s * (round_ste(clamp(x / s + z, qn, qp)) - z)`` with the LSQ / LSQ+ gradients (those of
    ``s`` and ``z`` times ``grad_factor``) in one compiled pass each way; ``x`` and ``groups``
    from :func:`kernel_layout`."""
    from .kernels import lowbit_ops
    return _KernelFakeQuantize.apply(x, s, z, qn, qp, grad_factor, groups, lowbit_ops())


def quantizers_backward_in_place(ops, grad_x_q: Tensor, x: Tensor, a_scale: Tensor,
                                 a_zero: Tensor, a_grid: tuple, grad_w_q: Tensor,
                                 weight: Tensor, w_scale: Tensor, w_grid: tuple) -> tuple:
    """A layer's LSQ+ input and LSQ weight quantizers' backward passes, written over its product
    gradients ``grad_x_q`` (``x``'s shape) and ``grad_w_q`` (the weight's), which only the
    calling autograd function holds; a grid is (qn, qp, gradient factor, (outer, groups,
    inner)). -> (grad_x, grad_weight, grad_a_scale, grad_a_zero, grad_w_scale)."""
    (qn, qp, a_factor, a_groups), (wqn, wqp, w_factor, w_groups) = a_grid, w_grid
    grad_x, grad_a_scale, grad_a_zero = ops.fake_quantize_groups_backward(
        grad_x_q, x, a_scale, a_zero, qn, qp, *a_groups, a_factor, in_place=True)
    grad_w, grad_w_scale, _ = ops.fake_quantize_groups_backward(
        grad_w_q, weight, w_scale, None, wqn, wqp, *w_groups, w_factor, in_place=True)
    return grad_x, grad_w, grad_a_scale, grad_a_zero, grad_w_scale


def _fake_quantized_operands(ops, x: Tensor, weight: Tensor, a_scale: Tensor, a_zero: Tensor,
                             w_scale: Tensor, a_grid: tuple, w_grid: tuple) -> tuple:
    """A layer's input and weight through its quantizers' one-pass forward (grids as
    :func:`quantizers_backward_in_place`'s). -> (x_fake, w_fake)"""
    (qn, qp, _, a_groups), (wqn, wqp, _, w_groups) = a_grid, w_grid
    return (ops.fake_quantize_groups(x, a_scale, a_zero, qn, qp, *a_groups),
            ops.fake_quantize_groups(weight, w_scale, None, wqn, wqp, *w_groups))


def _grids(layer, x: Tensor, weight: Tensor, a_groups: tuple) -> tuple:
    """The (qn, qp, gradient factor, (outer, groups, inner)) grids of ``layer``'s input
    quantizer on ``x`` (its groups ``a_groups``) and of its weight quantizer on ``weight``
    (N, ...): one step for all, or one per output channel."""
    a, w = layer.a_quantizer, layer.w_quantizer
    n = weight.shape[0]
    w_groups = (1, n, weight.numel() // n) if w.channel_dim is not None else \
        (1, 1, weight.numel())
    return ((a.qn, a.qp, a.gradient_factor(x), a_groups),
            (w.qn, w.qp, w.gradient_factor(weight), w_groups))


def _one_pass_quantizer(quantizer, kind: type, channel_dim) -> bool:
    """An initialised ``kind`` quantizer set to the one-pass kernels (``fused=True``), with one
    step for all or one per index of ``channel_dim``, and no forward hooks (a fused layer does
    not call it as a module)."""
    return (type(quantizer) is kind and quantizer.fused is True and quantizer.enabled
            and quantizer.observer is None and quantizer.initialized
            and quantizer.channel_dim in (None, channel_dim)
            and not quantizer._forward_hooks and not quantizer._forward_pre_hooks)


def fused_linear_ready(layer, x: Tensor) -> bool:
    """Whether a QLinear ``layer`` can run as :func:`fused_fake_quantized_linear` on ``x``: an
    LSQ+ input quantizer (per tensor or per input feature) and an LSQ weight quantizer (per
    tensor or per output feature), both initialised and with ``fused=True``, float32 CPU
    tensors, and the extension built. Anything else (a quantizer still initialising, a
    calibration observer or a forward hook on a quantizer, another quantizer type, an input of
    the wrong width, which the separate path refuses with its message) runs the layer's
    separate quantizers."""
    from .kernels import lowbit_ops
    from .quantizers import LSQPlusQuantizer, LSQQuantizer
    return (x.device.type == 'cpu' and x.dtype == torch.float32 and x.numel() > 0
            and x.dim() >= 1 and x.shape[-1] == layer.in_features
            and layer.weight.dtype == torch.float32
            and _one_pass_quantizer(layer.a_quantizer, LSQPlusQuantizer, -1)
            and _one_pass_quantizer(layer.w_quantizer, LSQQuantizer, 0)
            and lowbit_ops() is not None)


class _FakeQuantizedLinear(torch.autograd.Function):
    """rows (M, K), weight (N, K) -> (M, N): ``F.linear(A(rows), Q(weight), bias)`` with both
    fake quantizers as the one-pass kernels, in one autograd node. The backward computes the
    fake-quantized layer's products and runs the quantizers' backward passes over them in
    place: the product gradients are this function's own, so the input's and the weight's
    gradients need no memory of their own."""

    @staticmethod
    def forward(ctx, rows, weight, bias, a_scale, a_zero, w_scale, a_grid, w_grid, ops):
        x_fake, w_fake = _fake_quantized_operands(ops, rows, weight, a_scale, a_zero, w_scale,
                                                  a_grid, w_grid)
        ctx.save_for_backward(rows, x_fake, weight, w_fake, a_scale, a_zero, w_scale)
        ctx.grids, ctx.has_bias, ctx.ops = (a_grid, w_grid), bias is not None, ops
        return F.linear(x_fake, w_fake, bias)

    @staticmethod
    def backward(ctx, grad):
        rows, x_fake, weight, w_fake, a_scale, a_zero, w_scale = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x, grad_w, grad_a_scale, grad_a_zero, grad_w_scale = quantizers_backward_in_place(
            ctx.ops, grad @ w_fake, rows, a_scale, a_zero, ctx.grids[0], grad.t() @ x_fake,
            weight, w_scale, ctx.grids[1])
        grad_bias = grad.sum(0) if ctx.has_bias else None
        return grad_x, grad_w, grad_bias, grad_a_scale, grad_a_zero, grad_w_scale, None, None, \
            None


def fused_fake_quantized_linear(layer, x: Tensor) -> Tensor:
    """``layer(x)`` of a QLinear (x (..., K) -> (..., N)) as one autograd node (see
    :class:`_FakeQuantizedLinear`): the same values and gradients as its separate one-pass
    quantizers and ``F.linear`` (the products' gradients are the same GEMMs). Call where
    :func:`fused_linear_ready` is true."""
    from .kernels import lowbit_ops
    a, w = layer.a_quantizer, layer.w_quantizer
    k, n = layer.in_features, layer.out_features
    rows = x.reshape(-1, k).contiguous()
    per_feature = a.channel_dim is not None and k > 1
    a_groups = (rows.shape[0], k, 1) if per_feature else (1, 1, rows.numel())
    weight = layer.weight.contiguous()
    out = _FakeQuantizedLinear.apply(rows, weight, layer.bias, a.scale, a.zero_point, w.scale,
                                     *_grids(layer, x, weight, a_groups), lowbit_ops())
    return out.reshape(*x.shape[:-1], n)


def fused_conv_ready(layer, x: Tensor) -> tuple[Tensor, tuple[int, int, int]] | None:
    """As :func:`fused_linear_ready` for a QConv2d ``layer`` (input steps per tensor or per
    channel) with zero padding given as numbers, on a (B, C, H, W) ``x`` whose layout the
    one-pass kernel takes: that layout (:func:`kernel_layout`, for
    :func:`fused_fake_quantized_conv2d`) where the layer can run fused, else None."""
    from .kernels import lowbit_ops
    from .quantizers import LSQPlusQuantizer, LSQQuantizer
    if not (x.device.type == 'cpu' and x.dtype == torch.float32 and x.dim() == 4
            and x.numel() > 0 and layer.weight.dtype == torch.float32
            and layer.padding_mode == 'zeros' and not isinstance(layer.padding, str)
            and _one_pass_quantizer(layer.a_quantizer, LSQPlusQuantizer, 1)
            and _one_pass_quantizer(layer.w_quantizer, LSQQuantizer, 0)
            and lowbit_ops() is not None):
        return None
    a = layer.a_quantizer
    shape = (1, -1, 1, 1) if a.channel_dim is not None else (-1, )
    return kernel_layout(x, a.scale.detach().view(shape), a.zero_point.detach().view(shape))


class _FakeQuantizedConv2d(torch.autograd.Function):
    """x (B, C, H, W), weight (N, C / groups, kh, kw) -> ``F.conv2d(A(x), Q(weight), bias,
    ...)`` with both fake quantizers as the one-pass kernels, in one autograd node; the
    backward as :class:`_FakeQuantizedLinear`'s, the products' gradients from
    ``aten.convolution_backward`` (what autograd calls for ``F.conv2d``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, a_scale, a_zero, w_scale, a_grid, w_grid, conv, ops):
        x_fake, w_fake = _fake_quantized_operands(ops, x, weight, a_scale, a_zero, w_scale,
                                                  a_grid, w_grid)
        ctx.save_for_backward(x, x_fake, weight, w_fake, a_scale, a_zero, w_scale)
        ctx.grids, ctx.conv, ctx.has_bias, ctx.ops = (a_grid, w_grid), conv, bias is not None, ops
        return F.conv2d(x_fake, w_fake, bias, *conv)

    @staticmethod
    def backward(ctx, grad):
        x, x_fake, weight, w_fake, a_scale, a_zero, w_scale = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        grad_x_q, grad_w_q, grad_bias = torch.ops.aten.convolution_backward(
            grad, x_fake, w_fake, [weight.shape[0]] if ctx.has_bias else None, stride, padding,
            dilation, False, [0, 0], groups, [True, True, ctx.has_bias])
        grad_x, grad_w, grad_a_scale, grad_a_zero, grad_w_scale = quantizers_backward_in_place(
            ctx.ops, grad_x_q, x, a_scale, a_zero, ctx.grids[0], grad_w_q, weight, w_scale,
            ctx.grids[1])
        return (grad_x, grad_w, grad_bias if ctx.has_bias else None, grad_a_scale, grad_a_zero,
                grad_w_scale, None, None, None, None)


def fused_fake_quantized_conv2d(layer, layout: tuple[Tensor, tuple[int, int, int]]) -> Tensor:
    """``layer(x)`` of a QConv2d as one autograd node (:class:`_FakeQuantizedConv2d`): the same
    values as its separate one-pass quantizers and ``F.conv2d``, the same gradients; ``layout``
    is what :func:`fused_conv_ready` gave for ``x``."""
    from .kernels import lowbit_ops
    a, w = layer.a_quantizer, layer.w_quantizer
    x, a_groups = layout
    weight = layer.weight.contiguous()
    conv = (layer.stride, layer.padding, layer.dilation, layer.groups)
    return _FakeQuantizedConv2d.apply(x, weight, layer.bias, a.scale, a.zero_point, w.scale,
                                      *_grids(layer, x, weight, a_groups), conv, lowbit_ops())
