# Bi-ViT ablation row, DeiT-Small: + the learnable scaling factors (no distillation).
_base_ = './bivit_deit-small_4xb256-300e_in1k.py'

model = dict(teacher=None)
