# Q-DETR stage 1 on VOC at 3 bits.
_base_ = './qdetr_r50_w4a4-attn8-stage1_8xb2-300e_voc0712.py'

model = dict(quant=dict(w_bits=3, a_bits=3))
