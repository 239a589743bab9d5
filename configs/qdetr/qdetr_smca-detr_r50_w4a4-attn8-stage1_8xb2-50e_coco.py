# Q-DETR on SMCA-DETR, stage 1: only the backbone (and the input projection) is quantized;
# encoder, decoder and head stay real-valued, and the DRD distillation already runs. Stage 2
# (qdetr_smca-detr_r50_w4a4-attn8_8xb2-50e_coco.py) starts from its last checkpoint. The
# epochs of each stage are not in our sources: both use the full 50-epoch schedule here.
_base_ = './qdetr_smca-detr_r50_w4a4-attn8_8xb2-50e_coco.py'

model = dict(
    quant=dict(overrides=[
        dict(pattern='backbone.conv1', w_bits=8, a_bits=8),
        dict(pattern='encoder.*', w_bits=32, a_bits=32, attn_bits=32),
        dict(pattern='decoder.*', w_bits=32, a_bits=32, attn_bits=32),
        dict(pattern='bbox_head.*', w_bits=32, a_bits=32),
    ]),
    distribution_alignment=None)

# the float SMCA-DETR R50 (smca-detr_r50_8xb2-50e_coco.py), trained by the user
load_from = 'checkpoints/smca-detr_r50_8xb2-50e_coco.pth'
