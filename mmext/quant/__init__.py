"""Quantization and binarization: quantizers (registry ``QUANTIZERS``).

Issue 3 builds quantized layers, the config-driven module swap, OPs accounting and export on
top of these.
"""
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
    'STE_CHOICES', 'LearnableScaleBinarizer', 'LSQPlusQuantizer', 'LSQQuantizer', 'RSign',
    'SignBinarizer', 'WeightBinarizer', 'check_bits', 'grad_scale', 'round_ste', 'sign_ste'
]
