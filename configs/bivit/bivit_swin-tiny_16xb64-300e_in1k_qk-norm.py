# Bi-ViT ablation row 3, Swin-T: + qk-norm (a per-head LayerNorm on q and k before their
# binarizers). No distillation.
_base_ = './bivit_swin-tiny_16xb64-300e_in1k_scaling.py'

model = dict(quant=dict(qk_norm=True))
