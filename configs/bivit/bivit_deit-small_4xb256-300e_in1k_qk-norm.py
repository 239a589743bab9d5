# Bi-ViT ablation row 3, DeiT-Small: + qk-norm (a per-head LayerNorm on q and k before their
# binarizers). No distillation.
_base_ = './bivit_deit-small_4xb256-300e_in1k_scaling.py'

model = dict(quant=dict(qk_norm=True))
