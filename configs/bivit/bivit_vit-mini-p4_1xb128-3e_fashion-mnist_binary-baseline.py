# Bi-ViT ablation row, miniature ViT on Fashion-MNIST: the binary baseline: the same binarized
# network, the scales and zero points of q, k, v and P fixed at their data-driven initial values,
# no distillation.
_base_ = './bivit_vit-mini-p4_1xb128-3e_fashion-mnist.py'

model = dict(quant=dict(learnable_scale=False), teacher=None)
