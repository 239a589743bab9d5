"""Run an exported low-bit model on integer and bit-packed kernels (CPU inference).

:func:`build_runtime_model` takes the model a config builds (the quantized structure, as for
:func:`mmext.quant.export.load_quantized`) and an export file, fills the model from the file and
replaces each quantized layer whose arithmetic a kernel can do exactly:

- 1-bit weights with sign inputs (``SignBinarizer`` / ``RSign``): :class:`BinaryLinear`,
  :class:`BinaryConv2d` (XNOR-popcount on packed signs, :mod:`mmext.quant.kernels`);
- Bi-ViT's fully binary attention (q, k, v, P binarized): :class:`BinaryAttention`;
- two binary linear layers with an activation between them (a transformer MLP):
  :class:`BinaryLinearPair`, the first layer's dots giving the second's input signs directly;
- 2..8-bit weights with per-tensor LSQ+ inputs: :class:`IntLinear`, :class:`IntConv2d`
  (``torch._int_mm``, oneDNN's int8 linear or its int8 convolution, exact integer sums;
  2..4-bit values ride in int8); depthwise convolutions (of both kinds) on a compiled
  channels-last kernel; other grouped ones on oneDNN's int8 convolution or (binary, or where
  oneDNN cannot run them exactly) as a float32 convolution of the integer levels or signs,
  exact below 2^24.

A BatchNorm that runs right after a kernel convolution is folded into its scale and bias
(:func:`fold_batch_norms`). Every other layer stays as it was (fake-quantized float); ``report``
says which and why. The integer accumulations are exact, and the binary kernels round
``dot * scale + bias`` once (fused multiply-add), so each kernel layer gives the fake-quantized
layer's values up to float rounding (the fake-quantized float GEMM rounds its own way). Through
a model, a value lying on a rounding boundary of the next quantizer can move by one level, and
such moves add up over depth: how far the outputs and the predicted classes agree is measured
per model by ``benchmarks/lowbit_inference.py`` (README, "Inference on low-bit kernels").
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmext.utils.machine import cpu_flags

from .attention import QuantizedSDPA, binary_product, with_sdpa_mask
from .export import _quantized_layers, _read, load_quantized
from .kernels import BLOCK_N, lowbit_ops, pack_signs_reference, unpack_signs
from .layers import QConv2d
from .quantizers import (
    LearnableScaleBinarizer,
    LSQPlusQuantizer,
    LSQQuantizer,
    RSign,
    SignBinarizer,
    WeightBinarizer,
)


def _padded(t: Tensor, size: int, value=0) -> Tensor:
    """``t`` (N, ...) padded along dim 0 to ``size``."""
    pad = torch.full((size - t.shape[0], *t.shape[1:]), value, dtype=t.dtype)
    return torch.cat([t, pad]).contiguous()


class _KernelUser(nn.Module):
    """A module that runs the compiled kernels when ``use_kernel`` (and they could be built),
    else the pure-torch reference. The extension module is looked up on use, not stored, so
    the module can be deep-copied and pickled.

    ``kernel_operands()`` (where a subclass defines it) gives what a forward hands the kernel,
    its buffers read straight from the module's buffer dict: ``nn.Module.__getattr__`` runs
    Python for every buffer (about 0.6 us), and four to eight of them per call were a tenth of a
    small binary layer's time at batch 8. Read on every call (nothing cached), they are always
    the module's current buffers: reassigned, re-registered, loaded, converted, or swapped in by
    ``torch.func.functional_call``."""

    @property
    def ops(self):
        return lowbit_ops() if self.use_kernel else None


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _row_major(t: Tensor) -> Tensor:
    """A copy of the 2-d ``t`` (K, N) with strides (N, 1), also where K is 1: ``contiguous()``
    keeps a (1, N) view's strides (1, 1), on which ``torch._int_mm`` read the wrong elements
    (a layer of one input feature or channel)."""
    return torch.empty(t.shape, dtype=t.dtype).copy_(t)


def float32_convs_exact() -> bool:
    """Whether torch's CPU convolutions run float32 at full precision (the default), so that a
    convolution of integer levels whose sums stay below 2^24 gives them exactly; a process
    that lets oneDNN use TF32 or bfloat16 for float32 (``torch.backends.mkldnn``'s
    ``fp32_precision``) does not."""
    settings = [torch.backends.mkldnn]
    if hasattr(torch.backends.mkldnn, 'conv'):
        settings.append(torch.backends.mkldnn.conv)
    return all(getattr(m, 'fp32_precision', 'none') in ('none', 'ieee') for m in settings)


def is_depthwise(groups: int, out_channels: int, in_per_group: int, kh: int, kw: int) -> bool:
    """Whether a convolution is one the depthwise kernel runs: one input channel per output
    channel (``groups = C``), at most 256 taps."""
    return groups > 1 and in_per_group == 1 and out_channels == groups and kh * kw <= 256


def exact_float32_conv(x: Tensor, weight: Tensor, stride, padding, dilation,
                       groups: int) -> Tensor:
    """torch's float32 convolution of integer-valued ``x`` and ``weight`` whose sums (and
    partial sums) stay below 2^24 in magnitude: every product and sum is then an integer
    float32 holds, so the result is exact in whatever order the convolution adds. Refuses to
    run where float32 convolutions are set to a lower precision (:func:`float32_convs_exact`)."""
    if not float32_convs_exact():
        raise RuntimeError('the low-bit runtime computes grouped convolutions as exact float32 '
                           'convolutions of integers; this process lets oneDNN run float32 at '
                           "lower precision: set torch.backends.mkldnn.fp32_precision (and its "
                           ".conv) to 'ieee'")
    return F.conv2d(x, weight, None, stride, padding, dilation, groups)


# ---------------------------------------------------------------------------------- 1 bit
class _BinaryBase(_KernelUser):
    """Shared parts: the kernels (or the reference), sign threshold, scale and bias."""

    def __init__(self, signs: Tensor, scale: Tensor, bias: Tensor | None,
                 threshold: Tensor | None, use_kernel: bool):
        super().__init__()
        n = signs.shape[0]
        self.out_channels, self.npad = n, _round_up(n, BLOCK_N)
        self.register_buffer('scale', _padded(scale.float().reshape(-1).expand(n), self.npad))
        bias = bias.detach().float() if bias is not None else torch.zeros(n)
        self.register_buffer('bias', _padded(bias, self.npad))
        self.register_buffer('threshold', threshold)
        self.use_kernel = use_kernel

    def _signed(self, x: Tensor, channel_dim: int) -> Tensor:
        if self.threshold is None:
            return x
        shape = [1] * x.dim()
        shape[channel_dim] = -1
        return x - self.threshold.view(shape)

    def _column_threshold(self, columns: int) -> Tensor | None:
        """The threshold with one entry per column (a single one repeated), or None."""
        threshold = self._buffers['threshold']
        if threshold is not None and threshold.numel() != columns:   # one for all columns
            return threshold.expand(columns)
        return threshold

    def _pack(self, x2d: Tensor) -> Tensor:
        """Sign words of ``x2d - threshold`` (M, K) with the threshold per column, in one pass."""
        return self.ops.pack_signs(x2d.float().contiguous(), self._column_threshold(x2d.shape[1]))


class BinaryLinear(_BinaryBase):
    """``y = scale[n] * (sign(x - threshold) . sign(W[n])) + b[n]`` for x (..., K) ->
    (..., N), with the signs packed 64 to a word and the dot products by XNOR-popcount.

    Built by :meth:`from_signs` from the weight signs (N, K) in {-1, +1} and scale (N,).
    ``dots(x)`` returns the integer dot products (M, N) int32 (for exactness checks)."""

    def __init__(self, signs: Tensor, scale: Tensor, bias: Tensor | None = None,
                 threshold: Tensor | None = None, use_kernel: bool = True):
        super().__init__(signs, scale, bias, threshold, use_kernel)
        self.in_features = signs.shape[1]
        words = pack_signs_reference(signs.float())                 # (N, Wk)
        self.register_buffer('weight_words', _padded(words, self.npad).t().contiguous())

    def dots(self, x: Tensor) -> Tensor:
        return self._run(x, raw=True)

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, raw=False)

    def kernel_operands(self) -> tuple:
        """``binary_linear``'s operands but the input and ``raw``: (words, k, scale, bias, n,
        threshold per column or None)."""
        buffers, k = self._buffers, self.in_features
        return (buffers['weight_words'], k, buffers['scale'], buffers['bias'], self.out_channels,
                self._column_threshold(k))

    def _run(self, x: Tensor, raw: bool) -> Tensor:
        k = self.in_features
        if x.shape[-1] != k:
            raise ValueError(f'BinaryLinear expects (..., {k}), got {tuple(x.shape)}')
        ops = self.ops
        if ops is not None:   # the kernel packs the float rows in the GEMM's pass: (..., n)
            words, k, scale, bias, n, threshold = self.kernel_operands()
            return ops.binary_linear(x.float(), words, k, scale, bias, n, raw, threshold)
        n = self.out_channels
        x2d = self._signed(x, -1).reshape(-1, k)
        weights = unpack_signs(self.weight_words.t()[:n], k)
        signs = torch.where(x2d >= 0, 1.0, -1.0)
        dots = (signs.double() @ weights.double().t()).round().int()
        out = dots if raw else dots.float() * self.scale[:n] + self.bias[:n]
        return out.reshape(*x.shape[:-1], n)


# Modules that act on each element alone (dropout as in eval mode), so that a binary layer's
# next input signs are a function of its own dots, channel by channel.
ELEMENTWISE = (nn.GELU, nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardtanh, nn.LeakyReLU, nn.Identity,
               nn.Dropout)


@torch.no_grad()
def sign_thresholds(first: BinaryLinear, between: nn.Module, second: BinaryLinear,
                    ops) -> tuple[Tensor, Tensor] | str:
    """Fold ``first`` -> ``between`` (elementwise) -> ``second``'s input signs into two integer
    thresholds per channel of ``first``: ``below``, ``above`` (npad) int32 such that the sign
    ``second`` packs for channel n is +1 exactly where first's dot d has ``d <= below[n]`` or
    ``d >= above[n]``. Found by evaluating every dot a row can have (-K, -K + 2, ..., K)
    through ``fma(d, scale, bias)`` (as the kernel rounds), ``between`` (as torch computes it)
    and ``second``'s threshold, so the fold gives the unfused signs by construction; returns a
    reason instead where the signs are not of that form (GELU, ReLU and other monotone or
    single-dip functions are)."""
    k, n = first.in_features, first.out_channels
    dots = torch.arange(-k, k + 1, 2, dtype=torch.int32)                # (D,), D = K + 1
    values = between(ops.binary_affine_values(dots, first.scale[:n], first.bias[:n]))
    threshold = second.threshold
    if threshold is not None:
        values = values - (threshold.reshape(-1, 1) if threshold.numel() == n
                           else threshold.reshape(()))
    zeros = ~(values >= 0)                                              # (N, D): sign -1
    has_zero = zeros.any(1)
    first_zero = zeros.int().argmax(1)
    last_zero = zeros.shape[1] - 1 - zeros.flip(1).int().argmax(1)
    contiguous = zeros.sum(1) == last_zero - first_zero + 1
    if not bool((contiguous | ~has_zero).all()):
        bad = int((~contiguous & has_zero).sum())
        return (f'{bad} of {n} channels: the next signs are not "dot <= below or dot >= above" '
                f'through {type(between).__name__}')
    below = torch.where(has_zero, -k + 2 * (first_zero - 1), k).int()
    above = torch.where(has_zero, -k + 2 * (last_zero + 1), k + 1).int()
    return _padded(below, first.npad), _padded(above, first.npad)


class BinaryLinearPair(_KernelUser):
    """Two binary linear layers with elementwise modules between them (a transformer MLP:
    fc1, GELU, dropout, fc2), where the second layer's input signs come straight out of the
    first one's integer dots: ``sign(between(dot * scale + bias) - threshold)`` of every dot a
    row can have is evaluated once (:func:`sign_thresholds`) and folded into two thresholds per
    channel, so the first layer's float output, the activation and the second layer's packing
    are never computed. The same signs, hence the same output, as running the three in turn
    on the kernels. x (..., K) -> (..., N2). Inference only (dropout as in eval mode)."""

    def __init__(self, first: BinaryLinear, between: nn.Module, second: BinaryLinear,
                 below: Tensor, above: Tensor):
        super().__init__()
        self.first, self.between, self.second = first, between, second
        self.register_buffer('below', below)
        self.register_buffer('above', above)
        self.use_kernel = first.use_kernel and second.use_kernel

    def forward(self, x: Tensor) -> Tensor:
        modules = self._modules
        first, second = modules['first'], modules['second']
        ops = self.ops
        if ops is None:
            return second(self.between(first(x)))
        words1, k1, _, _, n1, threshold = first.kernel_operands()
        if x.shape[-1] != k1:
            raise ValueError(f'BinaryLinearPair expects (..., {k1}), got {tuple(x.shape)}')
        buffers = self._buffers
        words = ops.binary_linear_signs(x.float(), words1, k1, buffers['below'],
                                        buffers['above'], n1, threshold)
        words2, k2, scale, bias, n2, _ = second.kernel_operands()
        return ops.binary_linear(words, words2, k2, scale, bias, n2, False).view(
            *x.shape[:-1], n2)


def _pair_in(children: list[nn.Module], i: int,
             kind: type = None) -> tuple[nn.Module, list, nn.Module, int] | None:
    """A pair of linear layers of ``kind`` (default :class:`BinaryLinear`) starting at
    ``children[i]`` of a Sequential: either ``Sequential(first, *elementwise)`` then ``second``
    (mmcv's FFN), or ``first, *elementwise, second``; -> (first, the elementwise modules,
    second, index of second) or None."""
    kind = kind or BinaryLinear
    head = children[i]
    if isinstance(head, nn.Sequential) and len(head) and isinstance(head[0], kind):
        first, between, j = head[0], list(head)[1:], i + 1
    elif isinstance(head, kind):
        first, between, j = head, [], i + 1
        while j < len(children) and isinstance(children[j], ELEMENTWISE):
            between.append(children[j])
            j += 1
    else:
        return None
    if j >= len(children) or not isinstance(children[j], kind) \
            or not all(isinstance(m, ELEMENTWISE) for m in between) \
            or children[j].in_features != first.out_channels:
        return None
    return first, between, children[j], j


@torch.no_grad()
def fuse_binary_pairs(model: nn.Module) -> list[tuple[str, bool, str]]:
    """Replace each binary pair in a Sequential (:func:`_pair_in`) by a
    :class:`BinaryLinearPair` (the second's place keeps an ``nn.Identity``) where
    :func:`sign_thresholds` folds it; -> ``(name, True, '')`` per fused pair, ``(name, False,
    why)`` where the fold does not hold (both layers stay as they were).
    Needs the compiled kernels (nothing is fused on the reference)."""
    ops = lowbit_ops()
    if ops is None:
        return []
    lines = []
    for name, seq in list(model.named_modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq)
        i = 0
        while i < len(children):
            found = _pair_in(children, i)
            if found is None or not (found[0].use_kernel and found[2].use_kernel):
                i += 1
                continue
            first, between, second, j = found
            where = f'{name}.{i}' if name else str(i)
            folded = sign_thresholds(first, nn.Sequential(*between).eval(), second, ops)
            if isinstance(folded, str):
                lines.append((where, False, folded))
                i = j + 1
                continue
            seq[i] = BinaryLinearPair(first, nn.Sequential(*between), second, *folded)
            for idx in range(i + 1, j + 1):
                seq[idx] = nn.Identity()
            lines.append((where, True, ''))
            i = j + 1
    return lines


class BinaryConv2d(_BinaryBase):
    """``conv(sign(x - threshold), sign(W)) * scale + b`` with zero padding (a padded position
    adds 0, as in the fake-quantized layer); x (B, C, H, W) -> (B, N, H', W') in channels-last
    memory. Signs are packed along the channels of each pixel; the kernel is a direct
    convolution (no im2col). A convolution of fewer than 64 input channels whose stride is its
    kernel (larger than 1 x 1), without padding or dilation (a ViT's patch embedding), packs
    each patch as one row of C * kh * kw signs and runs the binary linear kernel on them
    instead (its few channels would leave most of each pixel's word empty). A 1 x 1
    convolution without padding is a binary linear layer on each (strided) pixel's channels:
    it runs the binary linear kernel, which packs the float pixels in its own pass (one op
    where packing, padding and the convolution were three).

    Groups > 1 (depthwise and grouped convolutions, whose few channels per group would leave
    the words nearly empty): float32 sums of the +-1 signs (exact: every dot is an integer of
    at most C / groups * kh * kw in magnitude), then ``dots * scale + b`` as the reference
    path rounds it (product and sum rounded apart, within a float rounding of the packed
    kernels' fused one). A depthwise layer (one input channel per output channel) runs the
    compiled depthwise kernel, which takes each tap's sign as the packing does and applies the
    epilogue in the same pass; other grouped layers (depthwise ones too with
    ``depthwise_kernel=False``) run torch's float32 convolution of the signs between a sign
    pass and the epilogue pass (the same floats)."""

    def __init__(self, signs: Tensor, scale: Tensor, bias: Tensor | None, stride: int,
                 padding: int, dilation: int, threshold: Tensor | None = None,
                 use_kernel: bool = True, groups: int = 1, depthwise_kernel: bool = True):
        super().__init__(signs, scale, bias, threshold, use_kernel)
        n, c, kh, kw = signs.shape
        self.in_channels, self.kernel_size, self.groups = c * groups, (kh, kw), groups
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.register_buffer('reference_weight', signs.float(), persistent=False)
        self.patches = self.pointwise = False
        self.depthwise = depthwise_kernel and is_depthwise(groups, n, c, kh, kw)
        if self.depthwise:              # (KH * KW, C): the depthwise kernel's taps
            self.register_buffer('weight_taps', signs.float().reshape(n, -1).t().contiguous(),
                                 persistent=False)
        if groups > 1:                  # the epilogue's weight sum: no zero point
            self.register_buffer('_no_weight_sum', torch.zeros(1, n), persistent=False)
            return
        taps = signs.permute(2, 3, 0, 1).reshape(kh * kw * n, c).float()
        words = pack_signs_reference(taps).view(kh * kw, n, -1)     # (taps, N, Wc)
        wc = words.shape[-1]
        self.register_buffer('weight_words', _padded(
            words.permute(0, 2, 1).reshape(kh * kw * wc, n).t(), self.npad).t().contiguous())
        # an all-zero word stands for C signs of -1: its dot with the tap is -sum(sign(W))
        tap_dot = -signs.sum(1).permute(1, 2, 0).reshape(kh * kw, n).round().int()
        self.register_buffer('tap_dot', _padded(tap_dot.t(), self.npad).t().contiguous())
        self.pointwise = (kh, kw) == (1, 1) and padding == 0   # weight_words: (Wc, Npad)
        self.patches = ((kh, kw) == (stride, stride) and padding == 0 and dilation == 1
                        and c < 64 and kh * kw > 1)
        if self.patches:                 # rows of (c, i, j) signs: the flattened weight's order
            patch_words = pack_signs_reference(signs.reshape(n, -1).float())
            self.register_buffer('patch_weight_words',
                                 _padded(patch_words, self.npad).t().contiguous())

    def dots(self, x: Tensor) -> Tensor:
        return self._run(x, raw=True)

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, raw=False)

    def _run(self, x: Tensor, raw: bool) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'BinaryConv2d expects (B, {self.in_channels}, H, W), got '
                             f'{tuple(x.shape)}')
        b, c, h, w = x.shape
        n, p = self.out_channels, self.padding
        if self.ops is None:            # the reference: float64
            signs = torch.where(self._signed(x, 1) >= 0, 1.0, -1.0).double()
            dots = F.conv2d(signs, self.reference_weight.double(), None, self.stride, p,
                            self.dilation, self.groups).float()
            return dots.round().int() if raw else (dots * self.scale[:n, None, None]
                                                   + self.bias[:n, None, None])
        if self.groups > 1:
            return self._run_grouped(x, raw)
        if self.pointwise:
            return self._run_pointwise(x, raw)
        if self.patches:
            return self._run_patches(x, raw)
        words = self._pack(x.permute(0, 2, 3, 1).reshape(b * h * w, c)).view(b, h, w, -1)
        if p:
            words = F.pad(words, (0, 0, p, p, p, p))
        kh, kw = self.kernel_size
        out = self.ops.binary_conv2d(words, self.weight_words, c, kh, kw, self.stride, p,
                                     self.dilation, h, w, self.tap_dot, self.scale, self.bias,
                                     n, raw)
        return out.permute(0, 3, 1, 2)

    def _run_grouped(self, x: Tensor, raw: bool) -> Tensor:
        """A grouped convolution: exact float32 dots of the +-1 signs (the depthwise kernel's,
        or torch's convolution), then the reference's ``dots * scale + b`` (the integer
        epilogue with no zero point rounds as it does)."""
        n = self.out_channels
        if self.depthwise and not raw:  # signs taken per tap, the epilogue in the same pass
            out = self.ops.depthwise_conv2d(x.float().permute(0, 2, 3, 1),
                                            *self.kernel_operands())
            return out.permute(0, 3, 1, 2)
        signs = self.ops.float_signs(self._signed(x, 1).float())
        dots = exact_float32_conv(signs, self.reference_weight, self.stride, self.padding,
                                  self.dilation, self.groups)
        if raw:
            return dots.round().int()
        b, n, oh, ow = dots.shape
        rows = dots.permute(0, 2, 3, 1).reshape(-1, n).contiguous()   # a view when channels-last
        out = self.ops.int_epilogue(rows, 0.0, self._no_weight_sum, self.scale[:n],
                                    self.bias[:n], True)
        return out.view(b, oh, ow, n).permute(0, 3, 1, 2)

    def kernel_operands(self) -> tuple:
        """What the layer's kernel takes besides the input: a 1 x 1 layer's ``binary_linear``
        operands but ``raw`` (words, C, scale, bias, N, threshold per channel or None); a
        depthwise layer's ``depthwise_conv2d`` operands (taps, kernel, stride, padding,
        dilation, signs, threshold per channel, epilogue); () for the others."""
        buffers, n, c = self._buffers, self.out_channels, self.in_channels
        scale, bias = buffers['scale'], buffers['bias']
        if self.pointwise:
            return buffers['weight_words'], c, scale, bias, n, self._column_threshold(c)
        if self.depthwise:
            return (buffers['weight_taps'], *self.kernel_size, self.stride, self.stride,
                    self.padding, self.padding, self.dilation, self.dilation, True,
                    self._column_threshold(n), 0.0, buffers['_no_weight_sum'], scale[:n],
                    bias[:n])
        return ()

    def _run_pointwise(self, x: Tensor, raw: bool) -> Tensor:
        """A 1 x 1 convolution without padding, x (B, C, H, W) -> (B, N, OH, OW) channels-last:
        the binary linear kernel on the (B, OH, OW, C) pixels the stride keeps (a view of a
        channels-last input; a copy inside the kernel otherwise)."""
        pixels = x.permute(0, 2, 3, 1)
        if self.stride != 1:
            pixels = pixels[:, ::self.stride, ::self.stride]
        words, c, scale, bias, n, threshold = self.kernel_operands()
        out = self.ops.binary_linear(pixels.float(), words, c, scale, bias, n, raw, threshold)
        return out.permute(0, 3, 1, 2)

    def _run_patches(self, x: Tensor, raw: bool) -> Tensor:
        """Non-overlapping patches as the rows of a binary linear layer (B * OH * OW, N)."""
        b, c = x.shape[:2]
        kh, kw = self.kernel_size
        words = self.ops.pack_patches(x.float().contiguous(), kh, kw, self._column_threshold(c))
        out = self.ops.binary_linear(words, self.patch_weight_words, c * kh * kw, self.scale,
                                     self.bias, self.out_channels, raw)
        return out.view(b, x.shape[2] // kh, x.shape[3] // kw, -1).permute(0, 3, 1, 2)


def layer_norm_of(transform: nn.Module) -> nn.LayerNorm | None:
    """The ``nn.LayerNorm`` over the last dimension that ``transform`` applies as its whole
    forward: the module itself, or what its ``as_layer_norm()`` returns (a wrapper such as
    Bi-ViT's ``HeadLayerNorm`` says so that way); None otherwise, and for a subclass of
    LayerNorm (whose forward may differ)."""
    as_layer_norm = getattr(transform, 'as_layer_norm', None)
    norm = transform if type(transform) is nn.LayerNorm else \
        as_layer_norm() if callable(as_layer_norm) else None
    if type(norm) is nn.LayerNorm and len(norm.normalized_shape) == 1:
        return norm
    return None


def _versions(tensors) -> tuple | None:
    """Where each tensor lives and its version counter, to tell when a check made on them must
    be redone; None where one is an inference tensor (no version counter: check every time)."""
    if any(t.is_inference() for t in tensors):
        return None
    return tuple((t.data_ptr(), t._version) for t in tensors)


def _avx512_popcount() -> bool:
    """Whether the compiled kernels run their AVX-512 paths on this CPU."""
    ops = lowbit_ops()
    return ops is not None and _kernels_use_avx512(ops)


@functools.cache
def _kernels_use_avx512(ops) -> bool:
    """Asked once per kernel module: the answer is fixed for the process (the CPU and
    ``MMEXT_LOWBIT_PORTABLE``)."""
    return bool(ops.has_avx512_popcount())


class BinaryAttention(_KernelUser):
    """Bi-ViT's fully binary attention on the XNOR-popcount kernel: q, k, v and the
    probabilities P each binarized per head as ``s (sign(x / s + z) - z)``
    (``LearnableScaleBinarizer``), so that, with ``b = sign(.)``,

        q k^T = s_q s_k (b_q . b_k - z_k sum b_q - z_q sum b_k + d z_q z_k)

    and likewise ``P v``: two batched binary GEMMs and rank-one corrections. The call signature
    of :class:`mmext.quant.QuantizedSDPA` (whose transforms of q and k, e.g. Bi-ViT's
    head-wise LayerNorm, it keeps).

    With ``fuse_softmax`` (on the compiled kernels of an AVX-512 CPU), P's sign words come
    straight from q's and k's: the logits are computed a row block at a time and never written
    out, and each row's softmax is decided against the binarizer's threshold in log space
    (``binary_attention_softmax_signs``). A bit is decided there only where no rounding of
    torch's float32 softmax could change it; the few rows with a probability closer to the
    threshold than that go through torch's softmax, so the words are the unfused path's bit for
    bit. It stays unfused where the logits are asked for (``need_weights``, hooks on the
    ``logits`` module or a ``logits`` module that is not an Identity) or the binarizer's steps
    do not fit (not positive, a threshold below 1e-30).

    With ``fuse_layer_norm`` (the same conditions), a q / k transform that is a LayerNorm over
    heads of up to 64 dimensions (:func:`layer_norm_of`: Bi-ViT's qk-norm) goes straight from
    the projection's strided heads to the binarizer's sign words (``layer_norm_head_signs``):
    the normalised values are never written out, and each bit is decided only where no rounding
    of torch's float32 LayerNorm and binarizer could change it; the rows with a value too close
    to the threshold go through torch's LayerNorm, so the words are the unfused path's bit for
    bit. It stays unfused where the transform has hooks, the head is longer or the steps or
    the norm's affine do not fit (a step of 0, values that are not finite)."""

    def __init__(self, sdpa: nn.Module, use_kernel: bool = True, fuse_softmax: bool = True,
                 fuse_layer_norm: bool = True):
        super().__init__()
        self.fuse_softmax, self.fuse_layer_norm = fuse_softmax, fuse_layer_norm
        self._fusable_steps: tuple | None = None      # (buffer versions, verdict)
        self._fusable_norms: dict[str, tuple] = {}    # per operand: (versions, verdict)
        self.num_heads = sdpa.num_heads
        self.q_transform, self.k_transform = sdpa.q_transform, sdpa.k_transform
        self.logits = sdpa.logits
        for name in ('q', 'k', 'v', 'prob'):
            quantizer = getattr(sdpa, f'{name}_quantizer')
            self.register_buffer(f'{name}_scale', quantizer.scale.detach().clone())
            self.register_buffer(f'{name}_zero', quantizer.zero_point.detach().clone())
        self.use_kernel = use_kernel

    def _step(self, name: str) -> tuple[Tensor, Tensor]:
        """The binarizer's step and zero point, shaped (1, H, 1, 1)."""
        return (getattr(self, f'{name}_scale').view(1, -1, 1, 1),
                getattr(self, f'{name}_zero').view(1, -1, 1, 1))

    def _levels(self, x: Tensor, name: str) -> Tensor:
        """``x / s + z`` (its sign is the binarizer's). The sum is taken in place: a second
        temporary of attention's size cost several times the arithmetic here (glibc gives such
        blocks back to the system, and touching them again faults pages)."""
        s, z = self._step(name)
        return (x / s).add_(z)

    def _operand(self, x: Tensor, name: str) -> Tensor:
        """What a product needs of the binarized x (B, H, R, K): on the kernels its sign words
        (B * H, R, W), packed from x in one pass (the levels are never written out); on the
        reference its levels."""
        if self.ops is None:
            return self._levels(x, name)
        step = (getattr(self, f'{name}_scale'), getattr(self, f'{name}_zero'))
        x = x.float()
        if x.stride(-1) != 1 and x.stride(-2) == 1:     # a transposed view, as v^T: no copy
            return self.ops.pack_head_signs_transposed(x.transpose(-2, -1), *step)
        return self.ops.pack_head_signs(x if x.stride(-1) == 1 else x.contiguous(), *step)

    def _product(self, a: Tensor, b: Tensor, shape: tuple[int, int, int, int], k: int,
                 za: Tensor, zb: Tensor, scale: Tensor, heads_last: bool = False) -> Tensor:
        """``sum_k s_a (sign(a) - z_a) s_b (sign(b) - z_b)`` (B, H, M, N) = ``shape`` for
        operands a (B, H, M, K) and b (B, H, N, K) from :meth:`_operand`; ``scale = s_a s_b``.
        ``heads_last``: on the kernels, the (B, H, M, N) result is a view of a (B, M, H, N)
        tensor, so that the caller's ``out.transpose(1, 2).reshape(B, M, H * N)`` (a
        transformer's merge of the heads) copies nothing; the same values either way."""
        if self.ops is not None:   # dots, sign sums and corrections in one pass, same roundings
            out = self.ops.binary_attention_product(a, b, k, za.float(), zb.float(),
                                                    (k * za * zb).float(), scale.float(),
                                                    heads_last)
            if heads_last:
                return out.view(shape[0], shape[2], shape[1], shape[3]).transpose(1, 2)
            return out.view(shape)
        return binary_product(a, b, za, zb, scale)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                need_weights: bool = False):
        if is_causal:
            raise ValueError('BinaryAttention does not implement is_causal; pass attn_mask')
        if query.dim() != 4 or query.shape[1] != self.num_heads:
            raise ValueError(f'BinaryAttention with {self.num_heads} heads expects q of shape '
                             f'(B, {self.num_heads}, L, d), got {tuple(query.shape)}')
        q_words, q = self._transformed_operand(query, self.q_transform, 'q')
        k_words, k = self._transformed_operand(key, self.k_transform, 'k')
        (sq, zq), (sk, zk), (sv, zv), (sp, zp) = (self._step(n) for n in ('q', 'k', 'v', 'prob'))
        bsz, heads, length, dim = q.shape
        source = k.shape[2]
        scale = 1 / math.sqrt(dim) if scale is None else scale
        shape, product_scale = (bsz, heads, length, source), sq * sk * scale
        if not need_weights and self._fuses_softmax():
            prob_words = self._prob_words(q_words, k_words, shape, dim, zq, zk, product_scale,
                                          attn_mask)
        else:
            logits = with_sdpa_mask(self.logits(self._product(q_words, k_words, shape, dim, zq,
                                                              zk, product_scale)), attn_mask)
            probs = logits.softmax(dim=-1)
            prob_words = self._operand(probs, 'prob')
        out = self._product(prob_words, self._operand(value.transpose(2, 3), 'v'),
                            (bsz, heads, length, value.shape[-1]), source, zp, zv, sp * sv,
                            heads_last=True)
        if need_weights:
            return out, (torch.where(self._levels(probs, 'prob') >= 0, 1.0, -1.0) - zp) * sp
        return out

    def _transformed_operand(self, x: Tensor, transform: nn.Module,
                             name: str) -> tuple[Tensor, Tensor]:
        """(:meth:`_operand` of ``transform(x)``, a tensor of its shape): on the fused path
        (see the class docstring) the words come from x itself, and x stands for the shape."""
        norm = self._fusable_norm(x, transform, name)
        if norm is None:
            out = transform(x)
            return self._operand(out, name), out
        return self._norm_words(x, norm, name)[0], x

    @torch.no_grad()
    def layer_norm_rows_to_torch(self, query: Tensor, key: Tensor) -> dict[str, int | None]:
        """For ``query`` and ``key`` as :meth:`forward` takes them: how many rows of q's and k's
        fused LayerNorm the kernel leaves to torch's LayerNorm (``{'q': ..., 'k': ...}``; None
        for an operand whose LayerNorm is not fused). Runs the fused LayerNorm once more; the
        forward's outputs do not depend on the count."""
        counts = {}
        for x, transform, name in ((query, self.q_transform, 'q'), (key, self.k_transform, 'k')):
            norm = self._fusable_norm(x, transform, name)
            counts[name] = None if norm is None else self._norm_words(x, norm, name)[1]
        return counts

    def _fusable_norm(self, x: Tensor, transform: nn.Module, name: str) -> nn.LayerNorm | None:
        """The LayerNorm that ``transform`` applies, where its sign words may come from x in one
        pass; else None. The check of the steps and the norm's affine is redone when their
        tensors change in place (their version counters)."""
        if not (self.fuse_layer_norm and self.ops is not None and _avx512_popcount()
                and x.dim() == 4 and x.dtype == torch.float32):
            return None
        norm = layer_norm_of(transform)
        if norm is None or x.shape[-1] != norm.normalized_shape[0] or x.shape[-1] > 64 \
                or not norm.eps >= 0 \
                or any(m._forward_hooks or m._forward_pre_hooks for m in (transform, norm)):
            return None
        tensors = [getattr(self, f'{name}_scale'), getattr(self, f'{name}_zero')] + \
            [t for t in (norm.weight, norm.bias) if t is not None]
        versions = _versions(tensors)
        cached = self._fusable_norms.get(name)
        if versions is None or cached is None or cached[0] != versions:
            fits = all(bool(torch.isfinite(t).all()) for t in tensors) \
                and bool((tensors[0] != 0).all())
            cached = self._fusable_norms[name] = (versions, fits)
        return norm if cached[1] else None

    def _norm_words(self, x: Tensor, norm: nn.LayerNorm, name: str,
                    extra_margin: float = 0.0) -> tuple[Tensor, int]:
        """The sign words (B * H, R, 1) of ``norm(x) / s + z`` for x (B, H, R, d), and how many
        rows torch's LayerNorm finished (``extra_margin`` widens the kernel's bound: tests send
        more rows to torch with it)."""
        weight = None if norm.weight is None else norm.weight.detach()
        bias = None if norm.bias is None else norm.bias.detach()
        return self.ops.layer_norm_head_signs(
            x if x.stride(-1) == 1 else x.contiguous(), weight, bias, norm.eps,
            getattr(self, f'{name}_scale').float(), getattr(self, f'{name}_zero').float(),
            extra_margin)

    def _fuses_softmax(self) -> bool:
        """Whether P's sign words may skip the float softmax (see the class docstring). The
        steps' check is redone when the buffers change in place (their version counters, which
        ``load_state_dict`` moves and a write through ``.data`` does not: the kernel checks the
        steps again and refuses unfit ones, naming the head)."""
        logits = self.logits
        if not (self.fuse_softmax and self.ops is not None and _avx512_popcount()
                and type(logits) is nn.Identity and not logits._forward_hooks
                and not logits._forward_pre_hooks):
            return False
        s, z = self.prob_scale, self.prob_zero
        versions = _versions((s, z))
        if versions is None or self._fusable_steps is None or self._fusable_steps[0] != versions:
            s64, z64 = s.double().reshape(-1), z.double().reshape(-1)
            theta = -z64 * s64
            verdict = bool(torch.isfinite(s64).all() and (s64 > 0).all()
                           and torch.isfinite(z64).all() and ((theta <= 0) | (theta >= 1e-30)).all())
            self._fusable_steps = (versions, verdict)
        return self._fusable_steps[1]

    def _prob_words(self, q_words: Tensor, k_words: Tensor, shape: tuple[int, int, int, int],
                    dim: int, zq: Tensor, zk: Tensor, product_scale: Tensor,
                    attn_mask: Tensor | None, extra_margin: float = 0.0) -> Tensor:
        """P's sign words (B * H, L, ceil(S / 64)) from q's and k's, the softmax decided in the
        kernel and the rows it leaves finished by torch's softmax (``extra_margin`` widens the
        kernel's margin: tests send more rows to torch with it)."""
        steps = (self.prob_scale.float(), self.prob_zero.float())
        if attn_mask is None:
            words, rows, logits = self.ops.binary_attention_softmax_signs(
                q_words, k_words, dim, zq.float(), zk.float(), (dim * zq * zk).float(),
                product_scale.float(), *steps, extra_margin)
        else:
            logits = with_sdpa_mask(
                self._product(q_words, k_words, shape, dim, zq, zk, product_scale), attn_mask)
            logits = logits.reshape(-1, shape[2], shape[3])
            words, rows = self.ops.softmax_signs(logits, *steps, extra_margin)
            logits = logits.reshape(-1, shape[3])[rows]
        if rows.numel():        # torch's softmax and the binarizer's levels, as unfused
            head = (rows // shape[2]) % shape[1]
            levels = (logits.softmax(dim=-1) / steps[0].reshape(-1)[head, None]).add_(
                steps[1].reshape(-1)[head, None])
            words.view(-1, words.shape[-1])[rows] = self.ops.pack_signs(levels, None)
        return words


# ------------------------------------------------------------------------------ 2..8 bits
INT8_BACKENDS = ('auto', 'int_mm', 'onednn')
_FLOAT_EXACT = 2 ** 24      # float32 holds every integer up to this magnitude


def _largest_sum(ints: Tensor, level: int) -> int:
    """The largest magnitude ``sum_k l_k W[n, k]`` (or any partial sum) reaches over output
    channels n of the integer weights ``ints`` (N, ...) with ``|l_k| <= level``."""
    return level * int(ints.reshape(ints.shape[0], -1).int().abs().sum(1).max())


def _int8_offset(qn: int, qp: int) -> int:
    """Shift that puts the integer grid [qn, qp] inside int8 (128 for unsigned 8 bit)."""
    return 128 if qp > 127 else 0


def _onednn_sums(levels: Tensor, zero: int, packed: Tensor, unit: Tensor,
                 zeros: Tensor) -> Tensor:
    """(M, K) uint8 levels -> (M, N) float32 ``sum_k (levels - zero) W[n, k]`` through oneDNN's
    int8 linear with unit scales and no bias (int32 sums converted once)."""
    return torch.ops.onednn.qlinear_pointwise(levels, 1.0, zero, packed, unit, zeros, None, 1.0,
                                              0, torch.float32, 'none', [], '')


@functools.cache
def onednn_int8_sums_exact() -> bool:
    """Whether this torch build has oneDNN's int8 linear (``torch.ops.onednn``, x86 builds) and
    its sums are exact here: a probe whose neighbouring products overflow a 16-bit intermediate
    (the u8 x s8 instruction of CPUs without VNNI saturates there) must give ``torch._int_mm``'s
    sums. Checked once per process."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, 'qlinear_prepack')
            and hasattr(torch.ops.onednn, 'qlinear_pointwise')):
        return False
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (32, 64), generator=g, dtype=torch.uint8)
    levels[:8] = 255
    weight = torch.randint(-128, 128, (16, 64), generator=g, dtype=torch.int8)
    weight[0], weight[1] = 127, -128
    try:
        sums = _onednn_sums(levels, 128, torch.ops.onednn.qlinear_prepack(weight, None),
                            torch.ones(16), torch.zeros(16, dtype=torch.int64))
    except RuntimeError:
        return False
    exact = torch._int_mm((levels.int() - 128).to(torch.int8), weight.t().contiguous())
    return torch.equal(sums, exact.float())


def _onednn_conv_sums(levels: Tensor, zero: int, packed: Tensor, unit: Tensor, zeros: Tensor,
                      stride, padding, dilation, groups: int) -> Tensor:
    """(B, C, H, W) uint8 levels (channels-last memory) -> (B, N, OH, OW) float32
    ``sum (levels - zero) W`` over the taps inside the image (oneDNN pads with the zero point,
    which adds nothing), through oneDNN's int8 convolution with unit scales and no bias. Only
    for the geometries :func:`onednn_conv_geometry` admits: on others oneDNN returned wrong
    sums or crashed."""
    return torch.ops.onednn.qconv2d_pointwise(
        levels, 1.0, zero, packed, unit, zeros, None, list(stride), list(padding),
        list(dilation), groups, 1.0, 0, torch.float32, 'none', [], '')


def _onednn_conv_packed(ints: Tensor, zero: int, stride, padding, dilation,
                        groups: int) -> Tensor:
    """oneDNN's packing of int8 weights (N, C / groups, KH, KW) for :func:`_onednn_conv_sums`."""
    return torch.ops.onednn.qconv_prepack(ints, torch.ones(ints.shape[0]), 1.0, zero,
                                          list(stride), list(padding), list(dilation), groups,
                                          None)


def onednn_conv_geometry(kernel_size, stride, padding, dilation) -> str:
    """Why oneDNN's int8 convolution must not run a layer of this geometry, or ''. A second
    reader's randomised comparison with float64 sums (torch 2.14, AVX-512 VNNI) found oneDNN
    returning wrong sums, and crashing the process, where every tap of an output along one
    axis lies in the padding (padding beyond ``(k - 1) // 2``, or dilation) and for one input
    channel per group with unequal strides; with dilation 1, equal strides and at most
    ``(k - 1) // 2`` padding on each side (so that every output sees the image) all of about
    3,800 shapes were exact. Only that geometry is admitted."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    if (dh, dw) != (1, 1):
        return f'dilation {(dh, dw)}'
    if sh != sw:
        return f'unequal strides {(sh, sw)}'
    if ph > (kh - 1) // 2 or pw > (kw - 1) // 2:
        return f'padding {(ph, pw)} beyond (k - 1) // 2 of a {kh} x {kw} kernel'
    return ''


@functools.cache
def onednn_int8_conv_sums_exact() -> bool:
    """Whether this torch build has oneDNN's int8 convolution (``torch.ops.onednn``, x86 builds)
    and its sums are exact here, as :func:`onednn_int8_sums_exact` checks its linear: a padded
    3 x 3 probe, dense and grouped, whose neighbouring products overflow a 16-bit intermediate
    must give float64's sums (the zero point in the padding). Checked once per process."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, 'qconv_prepack')
            and hasattr(torch.ops.onednn, 'qconv2d_pointwise')):
        return False
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (2, 32, 6, 7), generator=g, dtype=torch.uint8)
    levels[0] = 255
    levels = levels.contiguous(memory_format=torch.channels_last)
    for groups in (1, 4):
        weight = torch.randint(-128, 128, (16, 32 // groups, 3, 3), generator=g,
                               dtype=torch.int8)
        weight[:4] = 127
        weight[4:8] = -128
        conv_args = ((1, 1), (1, 1), (1, 1), groups)
        try:
            sums = _onednn_conv_sums(levels, 128, _onednn_conv_packed(weight, 128, *conv_args),
                                     torch.ones(16), torch.zeros(16, dtype=torch.int64),
                                     *conv_args)
        except RuntimeError:
            return False
        exact = F.conv2d(levels.double() - 128, weight.double(), None, 1, 1, 1, groups)
        if not torch.equal(sums.double(), exact):
            return False
    return True


def onednn_preferred() -> bool:
    """Whether ``backend='auto'`` runs wide linear layers (``IntLinear.ONEDNN_MIN_OUT`` outputs
    or more) on oneDNN here: its int8 sums are exact (:func:`onednn_int8_sums_exact`) and the
    CPU has AMX-INT8, where it was the faster GEMM (see :class:`IntLinear`)."""
    return 'amx_int8' in cpu_flags() and onednn_int8_sums_exact()


class _IntBase(_KernelUser):
    """Input quantization ``q = round(clamp(x / s + z, Qn, Qp))`` (the fake quantizer's own
    float operations, so the integers are the same), int8 weights, the exact integer sums
    ``acc = sum_k (q_k - offset) W[n, k]`` and the zero point's correction:
    ``y = s sw[n] (acc + (offset - z) sum_k W[n, k]) + b[n]``, the sum over the taps that saw
    the input. The compiled helpers (:func:`mmext.quant.kernels.lowbit_ops`) fuse the
    quantization and the correction into one pass each; torch's operations give the same
    floats without them.

    ``backend`` picks the GEMM that gives ``acc``: 'int_mm' runs ``torch._int_mm`` (int8 x
    int8 -> int32) on ``q - offset``; 'onednn' runs oneDNN's int8 linear
    (``torch.ops.onednn.qlinear_pointwise``) on the uint8 levels ``q - Qn`` with the zero
    point ``offset - Qn`` and unit scales, which returns the same sums as float32: exact where
    every sum it can form stays within 2^24 (``max(Qp - Qn, offset - Qn) sum_k |W[n, k]|``;
    checked when the layer is built) and the probe :func:`onednn_int8_sums_exact` passes;
    'onednn' where they do not is an error. 'auto' (the default) takes 'onednn' where both hold
    and the layer is one oneDNN runs faster here (``prefers_onednn``), else 'int_mm' (a grouped
    convolution: 'float32', :class:`IntConv2d`). Every backend gives the same floats, bit for
    bit, so the choice changes only the speed."""

    def __init__(self, ints: Tensor, w_scale: Tensor, bias: Tensor | None,
                 quantizer: LSQPlusQuantizer, use_kernel: bool, backend: str,
                 prefers_onednn: bool = False):
        super().__init__()
        if backend not in INT8_BACKENDS:
            raise ValueError(f'int8 backend must be one of {INT8_BACKENDS}, got {backend!r}')
        self.qn, self.qp = quantizer.qn, quantizer.qp
        self.offset = _int8_offset(self.qn, self.qp)
        self.a_scale = float(quantizer.scale.detach())
        self.zero_point = float(quantizer.zero_point.detach())
        n = ints.shape[0]
        self.out_channels = n
        self.register_buffer('out_scale', (self.a_scale * w_scale.detach().float()
                                           .reshape(-1).expand(n)).contiguous())
        self.register_buffer('bias', bias.detach().float().clone() if bias is not None
                             else torch.zeros(n))
        self.use_kernel = use_kernel
        self.onednn_zero = self.offset - self.qn        # sum (q - Qn - zero) W = sum (q - offset) W
        self.prefers_onednn = prefers_onednn
        self.gemm = self._pick_gemm(backend, ints.reshape(n, -1))
        self.register_buffer('_unit', torch.ones(n), persistent=False)
        self.register_buffer('_zeros', torch.zeros(n, dtype=torch.int64), persistent=False)
        self._onednn_weight = None      # packed on first use; an opaque tensor, not copied
        self.levels_for = None          # (act_lo, act_hi, next layer): see chain_integer_layers

    def _pick_gemm(self, backend: str, weight: Tensor) -> str:
        if backend == 'int_mm' or (backend == 'auto' and not self.prefers_onednn):
            return 'int_mm'
        # oneDNN's sums sum (q - Qn) W and zero sum W, and their difference: each at most
        # max(Qp - Qn, zero) sum |W| in size
        largest = _largest_sum(weight, max(self.qp - self.qn, self.onednn_zero))
        why = self._onednn_unsupported()
        if why:
            why = f'oneDNN does not take its {why} exactly'
        elif largest > _FLOAT_EXACT:
            why = (f'its sums can reach {largest}, beyond 2^24 (the integers float32 holds '
                   'exactly)')
        elif not self._onednn_exact():
            why = (f'this torch build has no oneDNN int8 {self.ONEDNN_OP} with exact sums on '
                   'this CPU')
        if why and backend == 'onednn':
            raise ValueError(f"int8 backend 'onednn' cannot run this layer: {why}; use 'auto' "
                             "(which falls back to torch's exact route) or 'int_mm'")
        return 'int_mm' if why else 'onednn'

    ONEDNN_OP = 'linear'

    @staticmethod
    def _onednn_exact() -> bool:
        return onednn_int8_sums_exact()

    def _onednn_unsupported(self) -> str:
        """What of this layer oneDNN cannot run exactly, or ''."""
        return ''

    def _load_from_state_dict(self, *args, **kwargs):
        # new weights: oneDNN's packing of the old ones is dropped (packed again on use)
        self._onednn_weight = None
        super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_onednn_weight'] = None  # deepcopy and pickle cannot read oneDNN's packing
        return state

    def extra_repr(self) -> str:
        return f'out_channels={self.out_channels}, grid=[{self.qn}, {self.qp}], gemm={self.gemm}'

    def _levels(self, x: Tensor) -> Tensor:
        """The input's float levels ``round(clamp(x / s + z, Qn, Qp))`` (torch's operations)."""
        t = x.float() / torch.tensor(self.a_scale)
        return t.add_(self.zero_point).clamp_(self.qn, self.qp).round_()

    @property
    def levels_offset(self) -> int:
        """The offset of the int8 levels this layer takes as input (``q - offset``): ``Qn`` on
        oneDNN (its uint8 levels), else ``offset``."""
        return self.qn if self.gemm == 'onednn' else self.offset

    def quantize(self, x: Tensor) -> Tensor:
        """``q - offset`` as int8, same shape as ``x``. An int8 ``x`` is taken as this layer's
        input levels ``q - levels_offset``, as the layer before hands them on
        (:func:`chain_integer_layers`): a layer's input is never int8 otherwise."""
        if x.dtype == torch.int8:
            if self.levels_offset != self.offset:
                raise ValueError('int8 levels handed on to a oneDNN layer are q - Qn; they '
                                 'go through forward, not quantize / accumulate')
            return x
        if self.ops is not None:
            return self.ops.quantize_int8(x.float(), self.a_scale, self.zero_point, self.qn,
                                          self.qp, self.offset)
        return (self._levels(x) - self.offset).to(torch.int8)

    def float_levels(self, x: Tensor) -> Tensor:
        """``q - offset`` as float32, same shape and memory layout as ``x``."""
        if x.dtype == torch.int8:
            return x.float()
        if self.ops is not None:
            return self.ops.quantize_float_levels(x.float(), self.a_scale, self.zero_point,
                                                  self.qn, self.qp, self.offset)
        return self._levels(x) - self.offset

    def unsigned_levels(self, x: Tensor) -> Tensor:
        """``q - Qn`` as uint8 (oneDNN's input), same shape as ``x``."""
        if x.dtype == torch.int8:
            return x.view(torch.uint8)
        if self.ops is not None:
            return self.ops.quantize_int8(x.float(), self.a_scale, self.zero_point, self.qn,
                                          self.qp, self.qn).view(torch.uint8)
        return (self._levels(x) - self.qn).to(torch.uint8)

    def _finish(self, acc: Tensor, weight_sum: Tensor) -> Tensor:
        """acc (M, N) int32 or float32 integer sums (this call's own temporary: on the kernels
        the floats take its memory); weight_sum (R, N), row ``m % R`` for output row m. With
        ``levels_for`` the next layer's int8 levels of the clamped output instead."""
        c = self.offset - self.zero_point
        ops = self.ops
        if self.levels_for is not None:
            lo, hi, after = self.levels_for
            if ops is not None:
                out_scale, bias = self.kernel_operands()[:2]
                return ops.int_epilogue_levels(
                    acc, c, weight_sum, out_scale, bias, lo, hi, after.a_scale,
                    after.zero_point, after.qn, after.qp, after.levels_offset)
            y = self._finish_floats(acc, weight_sum, c).clamp_(lo, hi)
            return (after._levels(y) - after.levels_offset).to(torch.int8)
        if ops is not None:
            out_scale, bias = self.kernel_operands()[:2]
            return ops.int_epilogue(acc, c, weight_sum, out_scale, bias, True)
        return self._finish_floats(acc, weight_sum, c)

    def kernel_operands(self) -> tuple:
        """The epilogue's (out_scale, bias)."""
        buffers = self._buffers
        return buffers['out_scale'], buffers['bias']

    def _finish_floats(self, acc: Tensor, weight_sum: Tensor, c: float) -> Tensor:
        """The epilogue in torch's operations (the reference the kernels round as)."""
        rows = weight_sum.shape[0]
        total = acc.float().view(-1, rows, acc.shape[1]) + c * weight_sum
        return (total * self.out_scale + self.bias).view(acc.shape)


class IntLinear(_IntBase):
    """A 2..8-bit Linear; x (..., K) -> (..., N). ``accumulate(x)`` returns the exact
    ``sum_k (q_k - offset) W[n, k]`` (M, N) int32 (``torch._int_mm``, the reference).
    ``backend``: see :class:`_IntBase`; 'auto' runs oneDNN where N >= 384 on a CPU with AMX-INT8:
    in ``benchmarks/lowbit_inference.py`` on a 2-core Intel CPU with AMX it ran DeiT-Tiny's qkv
    and fc1 (N = 576 and 768) 1.4-2.1x faster than ``torch._int_mm`` at batch 8, and proj and
    fc2 (N = 192) at 0.4-1.2x its speed; on a 2-core AMD EPYC (Zen 4: AVX-512 VNNI, no AMX) it
    ran 8-96% slower than ``torch._int_mm`` at each DeiT-Tiny layer, batch 1 and 8 (ten runs of
    the benchmark)."""

    ONEDNN_MIN_OUT = 384

    def __init__(self, ints: Tensor, w_scale: Tensor, bias: Tensor | None,
                 quantizer: LSQPlusQuantizer, use_kernel: bool = True, backend: str = 'auto'):
        super().__init__(ints, w_scale, bias, quantizer, use_kernel, backend,
                         prefers_onednn=ints.shape[0] >= self.ONEDNN_MIN_OUT
                         and onednn_preferred())
        self.in_features = ints.shape[1]
        self.register_buffer('weight_t', _row_major(ints.to(torch.int8).t()))   # (K, N)
        self.register_buffer('weight_sum', ints.float().sum(1)[None])

    def kernel_operands(self) -> tuple:
        """The epilogue's (out_scale, bias), then the GEMM's (weight_t, weight_sum)."""
        buffers = self._buffers
        return buffers['out_scale'], buffers['bias'], buffers['weight_t'], buffers['weight_sum']

    def accumulate(self, x: Tensor) -> Tensor:
        return torch._int_mm(self.quantize(x.reshape(-1, self.in_features)),
                             self._buffers['weight_t'])

    def _onednn_sums(self, x: Tensor) -> Tensor:
        """(M, N) float32 exact sums ``sum (q - offset) W`` of x (..., K), from oneDNN's int8
        linear on the uint8 levels (its weight packed on first use)."""
        if self._onednn_weight is None:
            self._onednn_weight = torch.ops.onednn.qlinear_prepack(
                self._buffers['weight_t'].t().contiguous(), None)
        return _onednn_sums(self.unsigned_levels(x.reshape(-1, self.in_features)),
                            self.onednn_zero, self._onednn_weight, self._unit, self._zeros)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f'IntLinear expects (..., {self.in_features}), got {tuple(x.shape)}')
        weight_sum = self.kernel_operands()[3]
        if self.gemm == 'onednn':
            acc = self._onednn_sums(x)
        else:
            acc = self.accumulate(x)
        return self._finish(acc, weight_sum).reshape(*x.shape[:-1], self.out_channels)


def grouped_sums_bound(ints: Tensor, qn: int, qp: int, offset: int) -> int:
    """The largest magnitude a sum ``sum_k (q_k - offset) W[n, k]`` (or a partial sum) of a
    layer with integer weights ``ints`` (N, ...) can reach."""
    return _largest_sum(ints, max(abs(qn - offset), abs(qp - offset)))


class IntConv2d(_IntBase):
    """A 2..8-bit convolution (zero padding) on integer sums; x (B, C, H, W) -> (B, N, H', W')
    in channels-last memory. A padded position holds the real value 0 and adds nothing, as
    in the fake-quantized layer.

    ``backend`` (see :class:`_IntBase`): 'onednn' runs oneDNN's int8 convolution
    (``torch.ops.onednn.qconv2d_pointwise``) on the uint8 levels ``q - Qn`` in channels-last
    memory, its zero point ``offset - Qn`` in the padding, with unit scales: the exact sums
    as float32, under the same bound, a probe of its own (:func:`onednn_int8_conv_sums_exact`)
    and on the geometries :func:`onednn_conv_geometry` admits (dilation 1, equal strides, at
    most ``(k - 1) // 2`` padding). 'int_mm': groups 1 as int8 im2col (a 1 x 1
    convolution of stride 1 without padding reads the channels-last levels as they are) and
    ``torch._int_mm``; groups > 1 as float32 sums of the levels ``q - offset`` and the integer
    weights, exact since every product and partial sum is an integer below 2^24 in magnitude
    (checked when the layer is built: :func:`grouped_sums_bound`), in whatever order they are
    added ('float32'; the reference path convolves in float64). 'auto' takes oneDNN where it is
    exact and admitted for grouped layers and for layers of at most ``ONEDNN_MAX_OUT`` outputs
    that need an im2col (larger than 1 x 1, strided or padded), else 'int_mm' / 'float32'. In
    ``benchmarks/lowbit_inference.py`` on a 2-core AMD EPYC (Zen 4, VNNI; seven runs, README),
    ResNeXt-50's grouped layer ran 1.4-2.1x faster on oneDNN than on the float32 route, and at
    ResNet-18's 3 x 3 sizes, where the im2col costs most beside a GEMM of few outputs, oneDNN
    ran 1.60-1.67x faster than ``torch._int_mm`` at 64 outputs (56 x 56, batch 8), 1.12-1.22x
    at 128 (28 x 28; 0.92-1.09x at batch 1), 0.96-1.02x at 256 and 0.67-0.85x at 512. A 1 x 1
    convolution of stride 1 without padding reads the levels as they are, where
    ``torch._int_mm`` was as fast in development timings.

    A depthwise layer (one input channel per output channel) runs the compiled depthwise
    kernel on the channels-last levels, the epilogue in the same pass (``gemm`` 'depthwise');
    ``backend`` does not apply to it. With ``depthwise_kernel=False`` (or without the compiled
    kernels) it is a grouped layer as above. Every route gives the same floats."""

    def __init__(self, ints: Tensor, w_scale: Tensor, bias: Tensor | None,
                 quantizer: LSQPlusQuantizer, stride, padding, dilation,
                 use_kernel: bool = True, backend: str = 'auto', groups: int = 1,
                 depthwise_kernel: bool = True):
        self.groups = groups            # read by _pick_gemm in the parent's __init__
        n, c, kh, kw = ints.shape
        self.depthwise = depthwise_kernel and is_depthwise(groups, n, c, kh, kw)
        self.in_channels, self.kernel_size = c * groups, (kh, kw)
        self.stride, self.padding, self.dilation = (tuple(stride), tuple(padding),
                                                    tuple(dilation))
        pointwise = (self.kernel_size == (1, 1) and self.stride == (1, 1)
                     and self.padding == (0, 0))
        super().__init__(ints, w_scale, bias, quantizer, use_kernel, backend,
                         prefers_onednn=groups > 1 or (
                             not pointwise and n <= self.ONEDNN_MAX_OUT))
        if groups > 1:
            largest = grouped_sums_bound(ints, self.qn, self.qp, self.offset)
            if largest > _FLOAT_EXACT:
                raise ValueError(f'IntConv2d (groups={groups}): its sums can reach {largest}, '
                                 'beyond 2^24 (the integers float32 holds exactly)')
        else:       # (KH * KW * C, N): tap-major, then channel, as the channels-last columns
            self.register_buffer('weight_t', _row_major(ints.to(torch.int8).permute(0, 2, 3, 1)
                                                        .reshape(n, -1).t()))
        self.register_buffer('weight_float', ints.float())
        if self.depthwise:              # (KH * KW, C): the depthwise kernel's taps
            self.register_buffer('weight_taps', ints.float().reshape(n, -1).t().contiguous(),
                                 persistent=False)
        self._valid_sums: dict = {}

    ONEDNN_OP = 'convolution'
    ONEDNN_MAX_OUT = 128

    @staticmethod
    def _onednn_exact() -> bool:
        return onednn_int8_conv_sums_exact()

    def _onednn_unsupported(self) -> str:
        return onednn_conv_geometry(self.kernel_size, self.stride, self.padding, self.dilation)

    def _load_from_state_dict(self, *args, **kwargs):
        self._valid_sums = {}           # computed from the weights being replaced
        super()._load_from_state_dict(*args, **kwargs)

    def _pick_gemm(self, backend: str, weight: Tensor) -> str:
        if self.depthwise and self.ops is not None:
            return 'depthwise'
        gemm = super()._pick_gemm(backend, weight)
        return 'float32' if gemm == 'int_mm' and self.groups > 1 else gemm

    def extra_repr(self) -> str:
        return super().extra_repr() + (f', groups={self.groups}' if self.groups > 1 else '')

    def _out_size(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (self.kernel_size, self.stride, self.padding,
                                                  self.dilation)
        return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def _conv(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, self.groups)

    def _valid_sum(self, h: int, w: int) -> Tensor:
        """(OH * OW, N): per output pixel, the weight summed over the taps inside the image."""
        if (h, w) not in self._valid_sums:
            s = self._conv(torch.ones(1, self.in_channels, h, w), self.weight_float)
            self._valid_sums[(h, w)] = s[0].flatten(1).t().contiguous()
        return self._valid_sums[(h, w)]

    def _channels_last_levels(self, x: Tensor, unsigned: bool = False) -> Tensor:
        """:meth:`quantize` of x (B, C, H, W) (:meth:`unsigned_levels` if ``unsigned``) with
        the levels in channels-last memory, the layout the kernels read. A float input in any
        other layout (the float stem before a network's first integer layer) is quantized and
        transposed in one pass: transposing the levels after quantizing took as long as the
        layer."""
        if (self.ops is not None and x.dtype != torch.int8
                and not x.is_contiguous(memory_format=torch.channels_last)):
            levels = self.ops.quantize_int8_channels_last(
                x.float(), self.a_scale, self.zero_point, self.qn, self.qp,
                self.qn if unsigned else self.offset)
            return levels.view(torch.uint8) if unsigned else levels
        levels = self.unsigned_levels(x) if unsigned else self.quantize(x)
        return levels.contiguous(memory_format=torch.channels_last)

    def _onednn_sums(self, x: Tensor) -> Tensor:
        """(B * OH * OW, N) float32 exact sums ``sum (q - offset) W`` over the taps inside the
        image, from oneDNN's int8 convolution (its weight packed on first use)."""
        conv_args = (self.stride, self.padding, self.dilation, self.groups)
        if self._onednn_weight is None:
            self._onednn_weight = _onednn_conv_packed(
                self.weight_float.to(torch.int8), self.onednn_zero, *conv_args)
        sums = _onednn_conv_sums(self._channels_last_levels(x, unsigned=True), self.onednn_zero,
                                 self._onednn_weight, self._unit, self._zeros, *conv_args)
        return sums.permute(0, 2, 3, 1).reshape(-1, self.out_channels)

    def _columns(self, q: Tensor) -> Tensor:
        """q (B, C, H, W) of bytes -> (B * OH * OW, KH * KW * C) of its dtype, 0 in the
        padding."""
        pixels = q.permute(0, 2, 3, 1)          # a view of channels-last levels
        if self.kernel_size == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0):
            return pixels.reshape(-1, self.in_channels)
        square = len(set(self.stride)) == len(set(self.padding)) == len(set(self.dilation)) == 1
        if self.ops is not None and square:
            return self.ops.im2col_int8(pixels, *self.kernel_size, self.stride[0],
                                        self.padding[0], self.dilation[0], 0)
        cols = F.unfold(q.float(), self.kernel_size, self.dilation, self.padding, self.stride)
        b, _, length = cols.shape
        cols = cols.view(b, self.in_channels, -1, length).transpose(1, 2)   # tap-major
        return cols.reshape(b, -1, length).transpose(1, 2).reshape(b * length, -1).to(q.dtype)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'IntConv2d expects (B, {self.in_channels}, H, W), got '
                             f'{tuple(x.shape)}')

    def _grouped_sums(self, x: Tensor) -> Tensor:
        """(B * OH * OW, N) float32 exact sums of a grouped convolution: float32 on the
        kernels, float64 on the reference."""
        levels = self.float_levels(x)
        if self.ops is None:
            sums = self._conv(levels.double(), self.weight_float.double()).float()
        else:
            sums = exact_float32_conv(levels, self.weight_float, self.stride, self.padding,
                                      self.dilation, self.groups)
        return sums.permute(0, 2, 3, 1).reshape(-1, self.out_channels)

    def accumulate(self, x: Tensor) -> Tensor:
        """(B * OH * OW, N) int32: ``sum (q - offset) W`` over the taps inside the image."""
        self._check(x)
        if self.groups > 1:
            return self._grouped_sums(x).round().int()
        return torch._int_mm(self._columns(self._channels_last_levels(x)), self.weight_t)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if self.gemm == 'depthwise' and self.ops is not None:
            args = (self._channels_last_levels(x).permute(0, 2, 3, 1), self.weight_taps,
                    *self.kernel_size, *self.stride, *self.padding, *self.dilation, False, None,
                    self.offset - self.zero_point, self._valid_sum(*x.shape[-2:]),
                    self.out_scale, self.bias)
            if self.levels_for is not None:     # the next layer's int8 levels (chained)
                lo, hi, after = self.levels_for
                out = self.ops.depthwise_conv2d(
                    *args, levels=[lo, hi, after.a_scale, after.zero_point, after.qn, after.qp,
                                   after.levels_offset])
            else:
                out = self.ops.depthwise_conv2d(*args)
            return out.permute(0, 3, 1, 2)
        if self.gemm in ('float32', 'depthwise'):
            acc = self._grouped_sums(x)
        elif self.gemm == 'onednn':
            acc = self._onednn_sums(x)
        else:
            acc = self.accumulate(x)
        oh, ow = self._out_size(*x.shape[-2:])
        out = self._finish(acc.contiguous(), self._valid_sum(*x.shape[-2:]))
        return out.view(x.shape[0], oh, ow, -1).permute(0, 3, 1, 2)


# ------------------------------------------------------------------ integer layers in a chain
def _clamp_bounds(modules: list[nn.Module]) -> tuple[float, float] | None:
    """``(lo, hi)`` of the one clamp activation (``nn.ReLU``, ``nn.ReLU6``, ``nn.Hardtanh``)
    among ``modules`` that are otherwise identities and dropouts in eval mode, or None (a
    dropout that is training is not nothing)."""
    bounds = None
    for module in modules:
        if isinstance(module, nn.Identity) or (isinstance(module, nn.Dropout)
                                                and not module.training):
            continue
        if type(module) is nn.ReLU:
            found = (0.0, math.inf)
        elif isinstance(module, nn.Hardtanh):       # ReLU6 too
            found = (float(module.min_val), float(module.max_val))
        else:
            return None
        if bounds is not None:
            return None
        bounds = found
    return bounds


def _conv_module_parts(module: nn.Module):
    """(conv, activation or None, order) of an mmcv ``ConvModule``-like module, or None."""
    order = getattr(module, 'order', None)
    if not (isinstance(order, tuple) and hasattr(module, 'conv') and hasattr(module, 'norm_name')):
        return None
    act = module.activate if getattr(module, 'with_activation', False) else None
    return module.conv, act, order


def _conv_module_chain(head: nn.Module, nxt: nn.Module):
    """(producer, consumer, activation, drop) where ConvModule ``head`` ends in an activation
    right after its integer convolution (its norm folded, or none) and ConvModule ``nxt``, run
    on its output, starts with its integer convolution; else None. ``drop()`` takes the
    activation out of ``head``'s forward."""
    first, second = _conv_module_parts(head), _conv_module_parts(nxt)
    if not (first and second and isinstance(first[0], IntConv2d) and first[1] is not None
            and isinstance(second[0], IntConv2d) and not head.with_norm
            and first[2][:1] == ('conv', ) and second[2][:1] == ('conv', )
            and not nxt.with_explicit_padding):
        return None

    def drop():
        head.with_activation = False            # ConvModule then skips its activation step
        head.activate = nn.Identity()
    return first[0], second[0], [first[1]], drop


def _chains_in(seq: nn.Sequential):
    """(producer, consumer, activation, drop) for the integer layers of ``seq`` whose output
    reaches the next integer layer through one clamp activation alone: two ConvModules in a
    row (the first with no norm left between its convolution and its activation: folded, or
    none; the second starting with its convolution), or a linear pair of mmcv's FFN.
    ``drop()`` takes the activation out of the forward."""
    children = list(seq)
    for head, nxt in zip(children, children[1:]):
        if (chain := _conv_module_chain(head, nxt)) is not None:
            yield chain
    i = 0
    while i < len(children):
        found = _pair_in(children, i, IntLinear)
        if found is None:
            i += 1
            continue
        first, between, second, j = found
        if isinstance(children[i], nn.Sequential):
            owner, at = children[i], range(1, len(children[i]))
        else:
            owner, at = seq, range(i + 1, j)

        def drop(owner=owner, at=at):
            for k in at:
                owner[k] = nn.Identity()
        yield first, second, between, drop
        i = j                           # the second layer may hand on levels in turn


def _inverted_residual_chains(block: nn.Module) -> list:
    """(producer, consumer, activation, drop) for each pair of an inverted residual block
    (mmdet's and mmpretrain's ``InvertedResidual``: ``expand_conv``, then ``depthwise_conv`` on
    its output alone, then, without a squeeze-excitation between, ``linear_conv`` on the depthwise
    one's output alone) whose first ends in a clamp activation."""
    if not hasattr(block, 'depthwise_conv') or not hasattr(block, 'with_expand_conv'):
        return []
    pairs = []
    if block.with_expand_conv:
        pairs.append(_conv_module_chain(block.expand_conv, block.depthwise_conv))
    if hasattr(block, 'linear_conv') and not getattr(block, 'with_se', True):
        pairs.append(_conv_module_chain(block.depthwise_conv, block.linear_conv))
    return [pair for pair in pairs if pair is not None]


@torch.no_grad()
def chain_integer_layers(model: nn.Module) -> list[tuple[str, str]]:
    """Let an integer layer hand the next one its int8 input levels where its output reaches
    that layer through one clamp activation alone (ReLU, ReLU6, Hardtanh; :func:`_chains_in`):
    the first layer's epilogue applies the clamp and the next layer's input quantization in
    the same pass (``int_epilogue_levels``) and writes int8 levels, not floats; the activation
    module leaves the forward. The same levels as the float output, the activation and the
    next layer's quantization in turn (each rounded as before), so the same outputs bit for
    bit. Needs the compiled kernels. Every integer layer's epilogue can hand on levels: a GEMM
    layer's (``int_epilogue_levels``), the depthwise kernel's (``depthwise_conv2d(...,
    levels=...)``: an inverted residual block's depthwise convolution hands its projection
    levels) and another grouped convolution's (the GEMM layers' epilogue after its float32
    sums). Returns ``(producer, consumer)`` names."""
    if lowbit_ops() is None:
        return []
    names = {module: name for name, module in model.named_modules()}
    chained = []
    found = []
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            found += list(_chains_in(module))
        else:
            found += _inverted_residual_chains(module)
    for first, second, between, drop in found:
        bounds = _clamp_bounds(between)
        if bounds is None or not (first.use_kernel and second.use_kernel) \
                or first.levels_for is not None:
            continue
        first.levels_for = (*bounds, second)
        drop()
        chained.append((names[first], names[second]))
    return chained


# ------------------------------------------------------------------------ BatchNorm folding
_BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def _foldable(norm: nn.Module) -> bool:
    return (isinstance(norm, _BATCH_NORMS) and not norm.training
            and norm.running_mean is not None and norm.running_var is not None)


def norms_after_convs(model: nn.Module, convs: tuple[type, ...]):
    """``(conv name, norm name, conv, norm, drop)`` for each BatchNorm that runs right after one
    of ``convs`` on its output: the norm of an mmcv ``ConvModule`` whose ``order`` puts it right
    after the convolution, and neighbours in an ``nn.Sequential``. ``drop()`` takes the norm
    out of the forward."""
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        order = getattr(module, 'order', None)
        if isinstance(order, tuple) and hasattr(module, 'norm_name') and getattr(
                module, 'with_norm', False) and isinstance(getattr(module, 'conv', None), convs):
            at = order.index('conv') if 'conv' in order else -1
            norm = getattr(module, module.norm_name)
            if 0 <= at < len(order) - 1 and order[at + 1] == 'norm' and _foldable(norm):
                def drop(module=module):
                    setattr(module, module.norm_name, nn.Identity())
                    module.with_norm = False    # ConvModule then skips its norm step
                yield prefix + 'conv', prefix + module.norm_name, module.conv, norm, drop
        elif isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (conv_name, conv), (norm_name, norm) in zip(children, children[1:]):
                if isinstance(conv, convs) and _foldable(norm):
                    def drop(module=module, norm_name=norm_name):
                        setattr(module, norm_name, nn.Identity())
                    yield prefix + conv_name, prefix + norm_name, conv, norm, drop


@torch.no_grad()
def fold_batch_norms(model: nn.Module) -> list[tuple[str, str]]:
    """Fold each eval-mode BatchNorm that runs right after a kernel convolution
    (:class:`IntConv2d`, :class:`BinaryConv2d`; in an mmcv ``ConvModule`` or an
    ``nn.Sequential``) into the convolution's per-channel scale and bias, and take it out of
    the forward; returns ``(conv name, norm name)`` per fold.

    ``norm(y) = y a + c`` with ``a = gamma / sqrt(var + eps)``, ``c = beta - mean a``, so the
    epilogue ``y = sums * scale + b`` becomes ``sums * (scale a) + (b a + c)`` (computed in
    float64, rounded once). The same values up to float rounding: one rounding where the
    BatchNorm added its own, which moves an output by an ulp or so (and, through the next
    quantizer, a value on a rounding boundary by a level), as any conv-BN fusion does."""
    folded = []
    for conv_name, norm_name, conv, norm, drop in list(norms_after_convs(
            model, (IntConv2d, BinaryConv2d))):
        std = (norm.running_var.double() + norm.eps).sqrt()
        a = (norm.weight.double() if norm.weight is not None else 1.0) / std
        c = (norm.bias.double() if norm.bias is not None else 0.0) - norm.running_mean.double() * a
        n = conv.out_channels
        if isinstance(conv, IntConv2d):
            scale, bias = conv.out_scale, conv.bias
        else:
            scale, bias = conv.scale[:n], conv.bias[:n]     # padded to BLOCK_N: views
        new_bias = (bias.double() * a + c).float()
        scale.copy_((scale.double() * a).float())
        bias.copy_(new_bias)
        drop()
        folded.append((conv_name, norm_name))
    return folded


# ------------------------------------------------------------------------------- builder
@dataclass
class RuntimeReport:
    """What :func:`build_runtime_model` did: ``layers``, per quantized layer ``(name, kernel or
    None, reason)``; ``pairs``, per pair of binary layers :func:`fuse_binary_pairs` found
    ``(name, fused, reason)``; ``gemms``, how many integer layers compute their sums on each
    route: 'int_mm' (``torch._int_mm``), 'onednn' (oneDNN's int8 linear or convolution,
    grouped ones included), 'depthwise' (the depthwise kernel), 'float32' (grouped
    convolutions off oneDNN: exact float32 convolutions);
    ``folded``, per BatchNorm folded into a kernel convolution ``(conv name, norm name)``;
    ``chains``, per integer layer that hands the next its int8 levels ``(name, next name)``."""
    layers: list
    pairs: list = field(default_factory=list)
    gemms: dict = field(default_factory=dict)
    folded: list = field(default_factory=list)
    chains: list = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, kernel, _ in self.layers:
            out[kernel or 'fake-quantized'] = out.get(kernel or 'fake-quantized', 0) + 1
        return out

    def kept(self) -> list[tuple[str, str]]:
        return [(name, why) for name, kernel, why in self.layers if kernel is None]


def one_pass_fake_quantizers(quantizers: list[nn.Module]) -> int:
    """Set the LSQ / LSQ+ quantizers among ``quantizers`` (of attention that stays
    fake-quantized) to fake-quantize in the low-bit extension's one pass where it applies, the
    eager formula elsewhere (``fused='kernel'``: the same values, :func:`fake_quantize`), in
    place of the eager formula's six passes over the tensor; -> how many (0 without the
    compiled kernels)."""
    if lowbit_ops() is None:
        return 0
    steps = [q for q in quantizers if isinstance(q, (LSQQuantizer, LSQPlusQuantizer))]
    for quantizer in steps:
        quantizer.fused = 'kernel'
    return len(steps)


def _sign_threshold(quantizer: nn.Module) -> tuple[bool, Tensor | None, str]:
    if type(quantizer) is SignBinarizer:
        return True, None, ''
    if isinstance(quantizer, RSign):
        return True, quantizer.threshold.detach().reshape(-1).clone(), ''
    return False, None, f'input quantizer {type(quantizer).__name__} is not a plain sign'


def _conv_args(layer: nn.Conv2d) -> tuple[bool, str]:
    if layer.padding_mode != 'zeros' or isinstance(layer.padding, str):
        return False, f'padding {layer.padding!r} / {layer.padding_mode}'
    return True, ''


def runtime_layer(layer: nn.Module, record: dict, tensors: dict[str, Tensor],
                  use_kernel: bool = True,
                  int8_backend: str = 'auto',
                  depthwise_kernel: bool = True) -> tuple[nn.Module | None, str]:
    """The kernel module for one exported layer, or ``(None, reason)``."""
    prefix = f"{record['name']}.weight" if record['name'] else 'weight'
    shape = record['shape']
    scale = tensors[f'{prefix}.scale']
    bias = layer.bias
    is_conv = isinstance(layer, QConv2d)
    if is_conv:
        ok, why = _conv_args(layer)
        if not ok:
            return None, why
    if record['kind'] == 'binary':
        if not isinstance(layer.w_quantizer, WeightBinarizer):
            return None, 'weight quantizer is not a WeightBinarizer'
        ok, threshold, why = _sign_threshold(layer.a_quantizer)
        if not ok:
            return None, why
        k = math.prod(shape[1:])
        bits = np.unpackbits(tensors[f'{prefix}.sign_bits'].numpy(), axis=1, count=k)
        signs = torch.from_numpy(bits.astype(np.float32) * 2 - 1).reshape(shape)
        if is_conv:
            if layer.stride[0] != layer.stride[1] or layer.padding[0] != layer.padding[1] \
                    or layer.dilation[0] != layer.dilation[1]:
                return None, 'non-square stride, padding or dilation'
            return BinaryConv2d(signs, scale, bias, layer.stride[0], layer.padding[0],
                                layer.dilation[0], threshold, use_kernel, layer.groups,
                                depthwise_kernel), 'binary'
        return BinaryLinear(signs, scale, bias, threshold, use_kernel), 'binary'
    quantizer = layer.a_quantizer
    if not isinstance(quantizer, LSQPlusQuantizer) or not quantizer.enabled:
        return None, f'input quantizer {type(quantizer).__name__} is not an LSQ+ quantizer'
    if quantizer.scale.numel() != 1:
        return None, 'per-channel input steps do not factor out of an integer GEMM'
    if quantizer.qn < -128 or quantizer.qp > 255:
        return None, f'input grid [{quantizer.qn}, {quantizer.qp}] is wider than 8 bits'
    ints = tensors[f'{prefix}.int']
    if is_conv:
        if layer.groups > 1:
            largest = grouped_sums_bound(ints, quantizer.qn, quantizer.qp,
                                         _int8_offset(quantizer.qn, quantizer.qp))
            if largest > _FLOAT_EXACT:
                return None, (f'groups={layer.groups}: its sums can reach {largest}, beyond '
                              '2^24 (float32 would round them)')
        return IntConv2d(ints, scale, bias, quantizer, layer.stride, layer.padding,
                         layer.dilation, use_kernel, int8_backend, layer.groups,
                         depthwise_kernel), f"int{record['bits']}"
    return (IntLinear(ints, scale, bias, quantizer, use_kernel, int8_backend),
            f"int{record['bits']}")


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition('.')
    setattr(model.get_submodule(parent) if parent else model, child, module)


@torch.no_grad()
def build_runtime_model(model: nn.Module, path: str | Path, use_kernel: bool = True,
                        pair_binary_layers: bool = True, int8_backend: str = 'auto',
                        fuse_softmax: bool = True,
                        fold_batch_norm: bool = True, depthwise_kernel: bool = True,
                        chain_integer: bool = True,
                        fuse_layer_norm: bool = True) -> tuple[nn.Module, RuntimeReport]:
    """Fill ``model`` (the quantized structure the exported config builds) from the export at
    ``path`` and swap its quantized layers for kernel modules where they compute exactly;
    returns the model (in eval mode, changed in place) and a :class:`RuntimeReport`.
    ``use_kernel=False`` runs every layer on the pure-torch reference (the same integers);
    ``pair_binary_layers`` lets a binary layer hand the next one its signs directly
    (:func:`fuse_binary_pairs`; the same outputs); ``int8_backend`` picks the integer layers'
    GEMM ('auto', 'int_mm' or 'onednn'; the same floats: :class:`IntLinear`); ``fuse_softmax``
    lets binary attention take P's signs straight from q's and k's (:class:`BinaryAttention`;
    the same outputs) and its LayerNorm of q and k straight to their sign words
    (``fuse_layer_norm``, the same outputs); ``fold_batch_norm`` folds a BatchNorm that follows
    a kernel convolution into its scale and bias (:func:`fold_batch_norms`; the same values up
    to float rounding);
    ``depthwise_kernel`` runs depthwise convolutions on the compiled depthwise kernel, else as
    other grouped convolutions (:class:`IntConv2d`, :class:`BinaryConv2d`; the same floats); ``chain_integer`` lets an integer layer hand
    the next one its int8 input levels through a clamp activation
    (:func:`chain_integer_layers`; the same outputs)."""
    devices = {p.device.type for p in model.parameters()}
    if devices - {'cpu'}:
        raise ValueError(f'the low-bit runtime runs on the CPU, the model is on {devices}: '
                         'move it with model.cpu() first')
    load_quantized(model, path)
    tensors, records = _read(path)
    layers = _quantized_layers(model)
    report = []
    for record in records:
        name = record['name']
        module, why = runtime_layer(layers[name], record, tensors, use_kernel, int8_backend,
                                    depthwise_kernel)
        if module is None:
            report.append((name, None, why))
            continue
        _set_module(model, name, module)
        report.append((name, why, ''))
    for name, module in list(model.named_modules()):
        if isinstance(module, QuantizedSDPA):
            quantizers = [getattr(module, f'{n}_quantizer') for n in ('q', 'k', 'v', 'prob')]
            if all(isinstance(q, LearnableScaleBinarizer) for q in quantizers):
                _set_module(model, name, BinaryAttention(module, use_kernel, fuse_softmax,
                                                         fuse_layer_norm))
                report.append((name, 'binary attention', ''))
            else:
                kinds = sorted({type(q).__name__ for q in quantizers})
                why = f'attention quantizers {kinds}: only fully binary attention has a kernel'
                passes = one_pass_fake_quantizers(quantizers) if use_kernel else 0
                if passes:
                    why += (f'; {passes} of its {len(quantizers)} fake-quantize in one compiled '
                            'pass (same values)')
                report.append((name, None, why))
    model.eval()
    folded = fold_batch_norms(model) if fold_batch_norm else []
    pairs = fuse_binary_pairs(model) if pair_binary_layers and use_kernel else []
    chains = chain_integer_layers(model) if chain_integer and use_kernel else []
    gemms: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, _IntBase):
            gemms[module.gemm] = gemms.get(module.gemm, 0) + 1
    return model, RuntimeReport(report, pairs, gemms, folded, chains)


__all__ = ['BinaryAttention', 'BinaryLinear', 'BinaryLinearPair', 'BinaryConv2d', 'INT8_BACKENDS',
           'IntLinear', 'IntConv2d', 'RuntimeReport', 'build_runtime_model', 'exact_float32_conv',
           'chain_integer_layers', 'float32_convs_exact', 'fold_batch_norms', 'fuse_binary_pairs',
           'grouped_sums_bound',
           'is_depthwise', 'layer_norm_of', 'norms_after_convs', 'onednn_conv_geometry',
           'onednn_int8_conv_sums_exact', 'onednn_int8_sums_exact',
           'one_pass_fake_quantizers',
           'onednn_preferred', 'runtime_layer',
           'sign_thresholds']
