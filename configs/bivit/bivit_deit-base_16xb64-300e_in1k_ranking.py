# Bi-ViT ablation row, DeiT-Base: + ranking-aware distillation (fixed scales).
_base_ = './bivit_deit-base_16xb64-300e_in1k.py'

model = dict(quant=dict(learnable_scale=False))
