# The demo detector with 4-bit weights and inputs in every Linear / Conv2d layer (LSQ / LSQ+),
# first convolution and box / class heads in full precision: mmext's module swap through the
# stock runner. (Conditional DETR computes its attention in mmdet's ConditionalAttention, whose
# matmuls stay float here; Q-DETR's configs quantize them.)
_base_ = './conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'

model = dict(
    _delete_=True,
    type='mmext.QuantizedModel',
    model={{_base_.model}},
    quant=dict(type='mmext.ModuleSwap', w_bits=4, a_bits=4,
               skip=['backbone.conv1.conv', 'bbox_head.*']))
