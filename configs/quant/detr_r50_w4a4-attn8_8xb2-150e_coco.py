# DETR-R50 at W-A-Attn 4-4-8 by the module swap alone (LSQ weights per output channel, LSQ+
# inputs per input channel, per-head LSQ+ on q, k, v and softmax probabilities, as Q-DETR's
# code): the quantized baseline of Q-DETR, fine-tuned (QAT) from mmdet's
# float DETR-R50, its steps calibrated first (inputs: MSE over 16 training batches; weights:
# 99.99th percentile per channel; calibration=None gives LSQ's data initialisation). Post-training quantization of the same float model:
#   python tools/test.py configs/quant/detr_r50_w4a4-attn8_8xb2-150e_coco.py <float checkpoint>
# The stem convolution and the class / box layers run at 8 bits (the paper leaves them
# unspecified). OPs: python tools/analysis/count_ops.py configs/quant/detr_r50_w4a4-attn8_8xb2-150e_coco.py
_base_ = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmext.QuantizedModel',
    model={{_base_.model}},
    quant=dict(
        type='mmext.ModuleSwap',
        w_bits=4,
        a_bits=4,
        attn_bits=8,
        a_granularity='channel',
        calibration=dict(method='mse', weight_method='percentile', batches=16),
        overrides=[
            dict(pattern='backbone.conv1', w_bits=8, a_bits=8),
            dict(pattern='bbox_head.*', w_bits=8, a_bits=8),
        ]))

# The float model from mmdet's model zoo, kept by the user (detr_r50_8xb2-150e_coco, 40.1 AP):
# https://download.openmmlab.com/mmdetection/v3.0/detr/detr_r50_8xb2-150e_coco/detr_r50_8xb2-150e_coco_20221023_153551-436d03e8.pth
load_from = 'checkpoints/detr_r50_8xb2-150e_coco_20221023_153551-436d03e8.pth'
custom_hooks = [dict(type='mmext.QuantCalibrationHook')]
