# Q-DETR stage 1: only the backbone (and the input projection) is quantized; encoder, decoder
# and head stay real-valued, and the DRD distillation already runs. Stage 2
# (qdetr_r50_w4a4-attn8_8xb2-500e_coco.py) starts from its last checkpoint; its new quantizers
# are calibrated before its first iteration (the backbone's keep their trained steps). The epochs of each stage are not in our sources:
# both use the full schedule here.
_base_ = './qdetr_r50_w4a4-attn8_8xb2-500e_coco.py'

model = dict(
    quant=dict(overrides=[
        dict(pattern='backbone.conv1', w_bits=8, a_bits=8),
        dict(pattern='encoder.*', w_bits=32, a_bits=32, attn_bits=32),
        dict(pattern='decoder.*', w_bits=32, a_bits=32, attn_bits=32),
        dict(pattern='bbox_head.*', w_bits=32, a_bits=32),
    ]),
    distribution_alignment=None)

# The float DETR-R50 from mmdet's model zoo (40.1 AP), kept by the user:
# https://download.openmmlab.com/mmdetection/v3.0/detr/detr_r50_8xb2-150e_coco/detr_r50_8xb2-150e_coco_20221023_153551-436d03e8.pth
load_from = 'checkpoints/detr_r50_8xb2-150e_coco_20221023_153551-436d03e8.pth'
