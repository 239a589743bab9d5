# Bi-ViT ablation row, miniature ViT on Fashion-MNIST: + the learnable scaling factors (no distillation).
_base_ = './bivit_vit-mini-p4_1xb128-3e_fashion-mnist.py'

model = dict(teacher=None)
