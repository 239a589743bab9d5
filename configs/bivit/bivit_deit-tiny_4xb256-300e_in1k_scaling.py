# Bi-ViT ablation row 2, DeiT-Tiny: the binary baseline + learnable scaling factors (per-head
# scale and zero point of the q, k, v and P binarizers, learnt). No qk-norm, no distillation.
_base_ = './bivit_deit-tiny_4xb256-300e_in1k_binary-baseline.py'

model = dict(quant=dict(learnable_scale=True))
