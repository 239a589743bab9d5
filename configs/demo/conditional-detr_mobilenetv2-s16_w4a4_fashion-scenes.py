# The demo detector at W-A-Attn 4-4-4: 4-bit weights and inputs in every Linear / Conv2d layer
# (LSQ / LSQ+) and 4-bit q, k, v and probabilities in every attention (per-head LSQ+, mmdet's
# ConditionalAttention included); the first convolution and the box / class heads stay in full
# precision. mmext's module swap through the stock runner.
_base_ = './conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'

model = dict(
    _delete_=True,
    type='mmext.QuantizedModel',
    model={{_base_.model}},
    quant=dict(type='mmext.ModuleSwap', w_bits=4, a_bits=4,
               skip=['backbone.conv1.conv', 'bbox_head.*'],
               # calibrated steps: inputs by MSE over 16 training batches, weights at the
               # 99.99th percentile of each output channel
               calibration=dict(method='mse', weight_method='percentile', batches=16)))
# calibration before the first step (mmext.NumericalGuardHook is not listed: Adam's first update
# can drive a tiny calibrated step below zero, README 'Reliability')
custom_hooks = [dict(type='mmext.QuantCalibrationHook')]
