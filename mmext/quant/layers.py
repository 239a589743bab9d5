"""Quantized Linear and Conv2d: fake-quantized weights and inputs, float bias always added.

``QLinear.from_float(linear, w_quantizer=..., a_quantizer=...)`` copies a float layer's
weights, so a float checkpoint fine-tunes into a quantized model (QAT).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmext.registry import MODELS, QUANTIZERS

from .fake_quantize_kernel import (
    fused_conv_ready,
    fused_fake_quantized_conv2d,
    fused_fake_quantized_linear,
    fused_linear_ready,
)
from .integer_qat import (
    integer_grid_linear,
    integer_grid_pointwise_conv,
    integer_grid_ready,
    is_pointwise,
)
from .quantizers import FULL_PRECISION


def build_quantizer(cfg: dict | nn.Module | None, **default_args) -> nn.Module:
    """A quantizer from a config (``dict(type='LSQQuantizer', bits=4)``), a module, or None
    (the identity). ``default_args`` fill what the config leaves out (e.g. num_channels)."""
    if cfg is None:
        return nn.Identity()
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg)
    for key, value in default_args.items():
        cfg.setdefault(key, value)
    return QUANTIZERS.build(cfg)


def build_grouped_quantizer(cfg: dict | nn.Module | None, channels: int,
                            channel_dim: int) -> nn.Module:
    """As :func:`build_quantizer`; ``per_channel=True`` in the config gives one scale per index
    of ``channel_dim`` (``num_channels=channels``), and is dropped otherwise."""
    if isinstance(cfg, dict) and 'per_channel' in cfg:
        per_channel = cfg['per_channel']
        cfg = {k: v for k, v in cfg.items() if k != 'per_channel'}
        if per_channel:
            return build_quantizer(cfg, num_channels=channels, channel_dim=channel_dim)
    return build_quantizer(cfg)


def build_weight_quantizer(cfg: dict | nn.Module | None, out_channels: int) -> nn.Module:
    """As :func:`build_quantizer`; ``per_channel=True`` in the config gives one scale per
    output channel (``num_channels=out_channels, channel_dim=0``)."""
    return build_grouped_quantizer(cfg, out_channels, 0)


GRANULARITIES = ('tensor', 'channel')


def check_granularity(granularity: str, what: str) -> bool:
    """True for 'channel', False for 'tensor'; anything else is refused."""
    if granularity not in GRANULARITIES:
        raise ValueError(f'{what} must be one of {GRANULARITIES}, got {granularity!r}')
    return granularity == 'channel'


def weight_quantizer_cfg(bits: int, granularity: str = 'channel') -> dict | None:
    """The default weight quantizer for a bit width: float, binary (mean|W| scale per output
    channel) or LSQ (one step per output channel, or per tensor)."""
    per_channel = check_granularity(granularity, 'weight granularity')
    if bits == FULL_PRECISION:
        return None
    if bits == 1:
        return dict(type='WeightBinarizer')
    return dict(type='LSQQuantizer', bits=bits, per_channel=per_channel)


def activation_quantizer_cfg(bits: int, granularity: str = 'tensor') -> dict | None:
    """The default input quantizer for a bit width: float, sign (ApproxSign STE) or LSQ+ (one
    step and zero point per tensor, or per input channel: the last dim of a Linear input, dim 1
    of a convolution's)."""
    per_channel = check_granularity(granularity, 'input granularity')
    if bits == FULL_PRECISION:
        return None
    if bits == 1:
        return dict(type='SignBinarizer', ste='approx_sign')
    return dict(type='LSQPlusQuantizer', bits=bits, per_channel=per_channel)


@MODELS.register_module()
class QLinear(nn.Linear):
    """``y = A(x) @ Q(W)^T + b`` for x (..., in_features) -> (..., out_features).

    Args:
        w_quantizer / a_quantizer: quantizer configs for the weight and the input (None keeps
            it float). ``per_channel=True`` gives one scale per output feature in the weight
            config, one per input feature (last dim) in the input config.

    Attribute (not saved): ``integer_gemm`` computes the product on the integer grid where the
    layer qualifies (:mod:`mmext.quant.integer_qat`; ``ModuleSwap(integer_gemm=True)`` sets it).
    """

    integer_gemm = False

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 w_quantizer: dict | nn.Module | None = None,
                 a_quantizer: dict | nn.Module | None = None, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.w_quantizer = build_weight_quantizer(w_quantizer, out_features)
        self.a_quantizer = build_grouped_quantizer(a_quantizer, in_features, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.integer_gemm and integer_grid_ready(self, x):
            return integer_grid_linear(self, x)
        if fused_linear_ready(self, x):
            return fused_fake_quantized_linear(self, x)
        return F.linear(self.a_quantizer(x), self.w_quantizer(self.weight), self.bias)

    @classmethod
    def from_float(cls, linear: nn.Linear, **quantizers) -> QLinear:
        """The quantized twin of ``linear`` with its weight and bias copied."""
        q = cls(linear.in_features, linear.out_features, linear.bias is not None,
                device=linear.weight.device, dtype=linear.weight.dtype, **quantizers)
        q.load_state_dict(linear.state_dict(), strict=False)
        return q


@MODELS.register_module()
class QConv2d(nn.Conv2d):
    """``y = conv(A(x), Q(W)) + b`` for x (B, C_in, H, W) -> (B, C_out, H', W'); arguments as
    ``nn.Conv2d`` plus the quantizer configs of :class:`QLinear` (``per_channel=True`` in the
    input config: one scale per input channel, dim 1).

    Attribute (not saved): ``integer_gemm`` computes a 1 x 1 convolution's product on the
    integer grid where it qualifies (:mod:`mmext.quant.integer_qat`), its output channels-last.
    """

    integer_gemm = False

    def __init__(self, *args, w_quantizer: dict | nn.Module | None = None,
                 a_quantizer: dict | nn.Module | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_quantizer = build_weight_quantizer(w_quantizer, self.out_channels)
        self.a_quantizer = build_grouped_quantizer(a_quantizer, self.in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.integer_gemm and is_pointwise(self) and integer_grid_ready(self, x):
            return integer_grid_pointwise_conv(self, x)
        layout = fused_conv_ready(self, x)   # the input's layout where it runs fused
        if layout:
            return fused_fake_quantized_conv2d(self, layout)
        return self._conv_forward(self.a_quantizer(x), self.w_quantizer(self.weight), self.bias)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, **quantizers) -> QConv2d:
        """The quantized twin of ``conv`` with its weight and bias copied."""
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                device=conv.weight.device, dtype=conv.weight.dtype, **quantizers)
        q.load_state_dict(conv.state_dict(), strict=False)
        return q
