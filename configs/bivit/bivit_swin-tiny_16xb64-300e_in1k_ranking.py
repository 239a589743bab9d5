# Bi-ViT ablation row, Swin-T: + ranking-aware distillation (fixed scales).
_base_ = './bivit_swin-tiny_16xb64-300e_in1k.py'

model = dict(quant=dict(learnable_scale=False))
