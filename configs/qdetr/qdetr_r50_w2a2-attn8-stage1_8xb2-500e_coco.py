# Q-DETR stage 1 at 2 bits (see qdetr_r50_w4a4-attn8-stage1_8xb2-500e_coco.py).
_base_ = './qdetr_r50_w4a4-attn8-stage1_8xb2-500e_coco.py'

model = dict(quant=dict(w_bits=2, a_bits=2))
