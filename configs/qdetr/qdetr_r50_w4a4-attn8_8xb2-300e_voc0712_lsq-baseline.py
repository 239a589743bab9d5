# VOC ablation row "LSQ baseline": no DA, no distillation, 4-4-8.
_base_ = './qdetr_r50_w4a4-attn8_8xb2-300e_voc0712.py'

model = dict(distribution_alignment=None, teacher=None)
