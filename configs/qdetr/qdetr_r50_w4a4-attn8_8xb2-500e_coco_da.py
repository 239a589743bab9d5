# Ablation row "+DA": distribution alignment, no distillation.
_base_ = './qdetr_r50_w4a4-attn8_8xb2-500e_coco.py'

model = dict(teacher=None)
