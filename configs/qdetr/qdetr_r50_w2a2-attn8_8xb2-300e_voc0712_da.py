# VOC ablation row "+DA": distribution alignment, no distillation, 2-2-8.
_base_ = './qdetr_r50_w2a2-attn8_8xb2-300e_voc0712.py'

model = dict(teacher=None)
