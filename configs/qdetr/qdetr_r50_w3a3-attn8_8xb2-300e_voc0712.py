# Q-DETR on VOC at W-A-Attn 3-3-8 (see qdetr_r50_w4a4-attn8_8xb2-300e_voc0712.py).
_base_ = './qdetr_r50_w4a4-attn8_8xb2-300e_voc0712.py'

model = dict(quant=dict(w_bits=3, a_bits=3))
load_from = 'work_dirs/qdetr_r50_w3a3-attn8-stage1_8xb2-300e_voc0712/epoch_300.pth'
