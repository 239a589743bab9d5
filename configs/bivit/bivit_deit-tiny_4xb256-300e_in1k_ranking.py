# Bi-ViT ablation row, DeiT-Tiny: + ranking-aware distillation (fixed scales).
_base_ = './bivit_deit-tiny_4xb256-300e_in1k.py'

model = dict(quant=dict(learnable_scale=False))
