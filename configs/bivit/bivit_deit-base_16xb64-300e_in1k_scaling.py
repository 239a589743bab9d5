# Bi-ViT ablation row, DeiT-Base: + the learnable scaling factors (no distillation).
_base_ = './bivit_deit-base_16xb64-300e_in1k.py'

model = dict(teacher=None)
