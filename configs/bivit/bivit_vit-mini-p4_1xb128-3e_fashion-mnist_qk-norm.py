# Bi-ViT ablation row 3, miniature ViT on Fashion-MNIST: + qk-norm (a per-head LayerNorm on q
# and k before their binarizers). No distillation.
_base_ = './bivit_vit-mini-p4_1xb128-3e_fashion-mnist_scaling.py'

model = dict(quant=dict(qk_norm=True))
