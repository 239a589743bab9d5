"""The eight DARTS candidate operations, real-valued or 1-bit.

``build_operation(name, channels, stride, binary)`` returns a module mapping
(B, C, H, W) -> (B, C, H / stride, W / stride). In a 1-bit operation every convolution is a
:class:`mmext.quant.QConv2d` with binarized inputs (sign, ApproxSign gradient) and binarized
weights (``beta * sign(w)``, learnable per-channel ``beta``), and the ReLUs of the real-valued
DARTS operations are dropped (the sign that follows is the non-linearity; ``sign(relu(x))``
would be constant). Pools, identity and zero have no weights and are the same in both.

``real_depthwise_input=True`` is an option of the released ImageNet retraining: the depthwise
convolution of each separable / dilated operation sees real-valued inputs (its weights stay
as ``binary`` says); the pointwise convolution after it still signs its input. Such a
depthwise convolution counts as floating-point operations (``mmext.quant.count_macs``: 32-bit
inputs).
"""
from __future__ import annotations

import torch
from torch import nn

from mmext.quant import QConv2d

#: The DARTS candidate operations, in the order of the architecture parameters' columns.
PRIMITIVES = ('none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect', 'sep_conv_3x3',
              'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5')


def binary_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                padding: int = 0, dilation: int = 1, groups: int = 1) -> QConv2d:
    """A W1A1 convolution without bias: ``conv(sign(x), beta * sign(w))``."""
    return QConv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                   bias=False,
                   w_quantizer=dict(type='WeightBinarizer', learnable_scale=True,
                                    num_channels=out_channels),
                   a_quantizer=dict(type='SignBinarizer', ste='approx_sign'))


BINARY_CHOICES = (False, True, 'activations')


def check_binary(binary) -> bool | str:
    """``binary`` is False (real-valued), True (1-bit weights and activations) or
    'activations' (1-bit activations, real weights: step 1 of the two-step retraining)."""
    if binary not in BINARY_CHOICES or isinstance(binary, int) and not isinstance(binary, bool):
        raise ValueError(f"binary must be False, True or 'activations', got {binary!r}")
    return binary


def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
         padding: int = 0, dilation: int = 1, groups: int = 1,
         binary: bool | str = False, real_input: bool = False) -> nn.Module:
    """A bias-free convolution: real-valued, 1-bit (``binary=True``) or with 1-bit inputs and
    real weights (``binary='activations'``). ``real_input=True`` keeps the input real-valued
    whatever ``binary`` says: 1-bit weights on real inputs for ``binary=True``, a real-valued
    convolution otherwise."""
    mode = check_binary(binary)
    if real_input and mode is True:
        return QConv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                       bias=False,
                       w_quantizer=dict(type='WeightBinarizer', learnable_scale=True,
                                        num_channels=out_channels))
    if mode == 'activations' and not real_input:
        return QConv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                       bias=False, a_quantizer=dict(type='SignBinarizer', ste='approx_sign'))
    if mode is True:
        return binary_conv(in_channels, out_channels, kernel_size, stride, padding, dilation,
                           groups)
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                     bias=False)


def activation(binary: bool | str) -> nn.Module:
    """ReLU before a real-valued convolution; nothing before one with 1-bit inputs (it signs
    its input)."""
    return nn.Identity() if check_binary(binary) else nn.ReLU(inplace=False)


class ReLUConvBN(nn.Sequential):
    """ReLU (real-valued only), conv, BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int, binary: bool = False, affine: bool = True):
        super().__init__(
            activation(binary),
            conv(in_channels, out_channels, kernel_size, stride, padding, binary=binary),
            nn.BatchNorm2d(out_channels, affine=affine))


class DilConv(nn.Sequential):
    """ReLU (real-valued only), depthwise dilated k x k conv, pointwise conv, BatchNorm.

    (B, C_in, H, W) -> (B, C_out, H / stride, W / stride). ``real_depthwise_input``: the
    depthwise conv (module ``[1]``) takes the real-valued input, not its sign.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int, dilation: int, binary: bool = False, affine: bool = True,
                 real_depthwise_input: bool = False):
        super().__init__(
            activation(binary),
            conv(in_channels, in_channels, kernel_size, stride, padding, dilation,
                 groups=in_channels, binary=binary, real_input=real_depthwise_input),
            conv(in_channels, out_channels, 1, binary=binary),
            nn.BatchNorm2d(out_channels, affine=affine))


class SepConv(nn.Sequential):
    """Two stacked (depthwise k x k, pointwise) convolutions, the first with ``stride``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int, binary: bool = False, affine: bool = True,
                 real_depthwise_input: bool = False):
        r = real_depthwise_input
        super().__init__(
            DilConv(in_channels, in_channels, kernel_size, stride, padding, 1, binary, affine, r),
            DilConv(in_channels, out_channels, kernel_size, 1, padding, 1, binary, affine, r))


class Zero(nn.Module):
    """The 'none' operation: zeros of the output shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution: two 1 x 1 stride-2 convolutions on offset grids, concatenated.

    (B, C_in, H, W) -> (B, C_out, ceil(H / 2), ceil(W / 2)); ``C_out`` must be even.
    """

    def __init__(self, in_channels: int, out_channels: int, binary: bool = False,
                 affine: bool = True):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f'FactorizedReduce needs an even out_channels, got {out_channels}')
        self.act = activation(binary)
        self.conv_1 = conv(in_channels, out_channels // 2, 1, stride=2, binary=binary)
        self.conv_2 = conv(in_channels, out_channels // 2, 1, stride=2, binary=binary)
        self.bn = nn.BatchNorm2d(out_channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _pool(kind: str, stride: int) -> nn.Module:
    if kind == 'max':
        return nn.MaxPool2d(3, stride=stride, padding=1)
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def build_operation(name: str, channels: int, stride: int, binary: bool = False,
                    affine: bool = True, real_depthwise_input: bool = False) -> nn.Module:
    """One candidate operation of :data:`PRIMITIVES` on ``channels`` channels.

    ``real_depthwise_input`` applies to the separable and dilated convolutions (see the module
    docstring). Raises ValueError for an unknown name, listing the known ones.
    """
    c, s, b, a, r = channels, stride, binary, affine, real_depthwise_input
    if name == 'none':
        return Zero(s)
    if name in ('max_pool_3x3', 'avg_pool_3x3'):
        return _pool(name[:3], s)
    if name == 'skip_connect':
        return nn.Identity() if s == 1 else FactorizedReduce(c, c, b, a)
    if name == 'sep_conv_3x3':
        return SepConv(c, c, 3, s, 1, b, a, r)
    if name == 'sep_conv_5x5':
        return SepConv(c, c, 5, s, 2, b, a, r)
    if name == 'dil_conv_3x3':
        return DilConv(c, c, 3, s, 2, 2, b, a, r)
    if name == 'dil_conv_5x5':
        return DilConv(c, c, 5, s, 4, 2, b, a, r)
    raise ValueError(f'unknown operation {name!r}; the DARTS operations are {PRIMITIVES}')


def weight_norm(operation: nn.Module) -> float:
    """``R(w) = ||w||_2^2`` over an operation's convolution weights (DCP-NAS's decoupled
    optimisation ranks operations by it). Parameter-free operations get constants: 1 for the
    identity, ``1 / K^2`` for a K x K pool, 0 for zero. A pool wrapped with other modules
    without convolutions (the search space's ``Sequential(pool, BatchNorm)``) counts as the
    pool."""
    if isinstance(operation, Zero):
        return 0.0
    if isinstance(operation, nn.Identity):
        return 1.0
    convs = [m for m in operation.modules() if isinstance(m, nn.Conv2d)]
    pools = [m for m in operation.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    if pools and not convs:
        size = pools[0].kernel_size
        height, width = (size, size) if isinstance(size, int) else size
        return 1.0 / (height * width)
    return float(sum(m.weight.detach().pow(2).sum() for m in convs))
