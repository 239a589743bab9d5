"""Quantized Linear and Conv2d: fake-quantized weights and inputs, float bias always added.

``QLinear.from_float(linear, w_quantizer=..., a_quantizer=...)`` copies a float layer's
weights, so a float checkpoint fine-tunes into a quantized model (QAT).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmext.registry import MODELS, QUANTIZERS

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


def build_weight_quantizer(cfg: dict | nn.Module | None, out_channels: int) -> nn.Module:
    """As :func:`build_quantizer`; ``per_channel=True`` in the config gives one scale per
    output channel (``num_channels=out_channels, channel_dim=0``)."""
    if isinstance(cfg, dict) and cfg.get('per_channel', False):
        cfg = {k: v for k, v in cfg.items() if k != 'per_channel'}
        return build_quantizer(cfg, num_channels=out_channels, channel_dim=0)
    return build_quantizer(cfg)


def weight_quantizer_cfg(bits: int) -> dict | None:
    """The default weight quantizer for a bit width: float, binary (mean|W| scale) or LSQ."""
    if bits == FULL_PRECISION:
        return None
    if bits == 1:
        return dict(type='WeightBinarizer')
    return dict(type='LSQQuantizer', bits=bits, per_channel=True)


def activation_quantizer_cfg(bits: int) -> dict | None:
    """The default input quantizer for a bit width: float, sign (ApproxSign STE) or LSQ+."""
    if bits == FULL_PRECISION:
        return None
    if bits == 1:
        return dict(type='SignBinarizer', ste='approx_sign')
    return dict(type='LSQPlusQuantizer', bits=bits)


@MODELS.register_module()
class QLinear(nn.Linear):
    """``y = A(x) @ Q(W)^T + b`` for x (..., in_features) -> (..., out_features).

    Args:
        w_quantizer / a_quantizer: quantizer configs for the weight and the input (None keeps
            it float). ``per_channel=True`` in the weight config gives one scale per output
            feature.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 w_quantizer: dict | nn.Module | None = None,
                 a_quantizer: dict | nn.Module | None = None, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.w_quantizer = build_weight_quantizer(w_quantizer, out_features)
        self.a_quantizer = build_quantizer(a_quantizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
    ``nn.Conv2d`` plus the quantizer configs of :class:`QLinear`."""

    def __init__(self, *args, w_quantizer: dict | nn.Module | None = None,
                 a_quantizer: dict | nn.Module | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_quantizer = build_weight_quantizer(w_quantizer, self.out_channels)
        self.a_quantizer = build_quantizer(a_quantizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.a_quantizer(x), self.w_quantizer(self.weight), self.bias)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, **quantizers) -> QConv2d:
        """The quantized twin of ``conv`` with its weight and bias copied."""
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                device=conv.weight.device, dtype=conv.weight.dtype, **quantizers)
        q.load_state_dict(conv.state_dict(), strict=False)
        return q
