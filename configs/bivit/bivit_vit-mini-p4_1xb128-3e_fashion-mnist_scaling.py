# Bi-ViT ablation row 2, miniature ViT on Fashion-MNIST: the binary baseline + learnable scaling
# factors (per-head scale and zero point of the q, k, v and P binarizers, learnt). No qk-norm,
# no distillation.
_base_ = './bivit_vit-mini-p4_1xb128-3e_fashion-mnist_binary-baseline.py'

model = dict(quant=dict(learnable_scale=True))
