"""Quantization and binarization: quantizers (registry ``QUANTIZERS``) and quantized layers.

Issue 3 adds the quantized attention, the config-driven module swap, OPs accounting and export
on top of these.
"""
from .layers import QConv2d, QLinear, build_quantizer, build_weight_quantizer
from .quantizers import (
                         STE_CHOICES,
                         LearnableScaleBinarizer,
                         LSQPlusQuantizer,
                         LSQQuantizer,
                         RSign,
                         SignBinarizer,
                         WeightBinarizer,
                         check_bits,
                         grad_scale,
                         round_ste,
                         sign_ste,
)

__all__ = [
    'QConv2d', 'QLinear', 'build_quantizer', 'build_weight_quantizer', 'STE_CHOICES',
    'LearnableScaleBinarizer', 'LSQPlusQuantizer', 'LSQQuantizer', 'RSign', 'SignBinarizer',
    'WeightBinarizer', 'check_bits', 'grad_scale', 'round_ste', 'sign_ste'
]
