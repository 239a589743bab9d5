"""Quantization and binarization: quantizers (registry ``QUANTIZERS``), quantized layers, the
config-driven module swap, calibration (and its runner hook), OPs counting and export.
"""
from .calibration import (
    QuantCalibrationHook,
    calibrate_in_runner,
    calibrate_model,
    format_report,
    passthrough,
    pending_calibration,
    step_quantizers,
)
from .layers import (
    QConv2d,
    QLinear,
    activation_quantizer_cfg,
    build_quantizer,
    build_weight_quantizer,
    weight_quantizer_cfg,
)
from .model import QuantizedModel
from .observers import CALIBRATION_METHODS, CalibrationSpec
from .ops_counter import (
    CONVENTIONS,
    LayerMACs,
    count_macs,
    format_ops_table,
    parameter_bits,
    summarize_ops,
)
from .quantizers import (
    STE_CHOICES,
    LearnableScaleBinarizer,
    LSQPlusQuantizer,
    LSQQuantizer,
    RSign,
    SignBinarizer,
    WeightBinarizer,
    check_bits,
    fake_quantize,
    grad_scale,
    round_ste,
    sign_ste,
)
from .swap import ModuleSwap, twin_attention

__all__ = [
    'QConv2d', 'QLinear', 'build_quantizer', 'build_weight_quantizer', 'STE_CHOICES',
    'LearnableScaleBinarizer', 'LSQPlusQuantizer', 'LSQQuantizer', 'RSign', 'SignBinarizer',
    'WeightBinarizer', 'check_bits', 'fake_quantize', 'grad_scale', 'round_ste', 'sign_ste', 'ModuleSwap',
    'activation_quantizer_cfg', 'weight_quantizer_cfg', 'CONVENTIONS', 'LayerMACs', 'count_macs',
    'summarize_ops', 'QuantizedModel', 'format_ops_table', 'parameter_bits', 'twin_attention',
    'QuantCalibrationHook', 'calibrate_in_runner', 'calibrate_model', 'format_report', 'passthrough',
    'pending_calibration', 'step_quantizers', 'CALIBRATION_METHODS', 'CalibrationSpec'
]
