# Q-DETR stage 1 on VOC: backbone quantized, encoder / decoder / head real-valued, from the
# float VOC DETR-R50 (detr_r50_8xb2-300e_voc0712.py).
_base_ = './qdetr_r50_w4a4-attn8_8xb2-300e_voc0712.py'

model = dict(
    quant=dict(overrides=[
        dict(pattern='backbone.conv1', w_bits=8, a_bits=8),
        dict(pattern='encoder.*', w_bits=32, a_bits=32, attn_bits=32),
        dict(pattern='decoder.*', w_bits=32, a_bits=32, attn_bits=32),
        dict(pattern='bbox_head.*', w_bits=32, a_bits=32),
    ]),
    distribution_alignment=None)
load_from = 'work_dirs/detr_r50_8xb2-300e_voc0712/epoch_300.pth'
