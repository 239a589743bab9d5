# Bi-ViT ablation row, miniature ViT on Fashion-MNIST: + ranking-aware distillation (fixed scales).
_base_ = './bivit_vit-mini-p4_1xb128-3e_fashion-mnist.py'

model = dict(quant=dict(learnable_scale=False))
