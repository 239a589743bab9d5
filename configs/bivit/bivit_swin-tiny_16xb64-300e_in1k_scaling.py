# Bi-ViT ablation row, Swin-T: + the learnable scaling factors (no distillation).
_base_ = './bivit_swin-tiny_16xb64-300e_in1k.py'

model = dict(teacher=None)
