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
"""
from __future__ import annotations

import math

import torch
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
