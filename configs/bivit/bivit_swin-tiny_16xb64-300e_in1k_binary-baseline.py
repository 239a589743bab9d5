# Bi-ViT ablation row, Swin-T: the binary baseline: the same binarized network, the scales and zero points of q, k,
# v and P fixed at their data-driven initial values, no distillation.
_base_ = './bivit_swin-tiny_16xb64-300e_in1k.py'

model = dict(quant=dict(learnable_scale=False), teacher=None)
