# DeiT-Tiny with binary weights, activations and attention (q, k, v and probabilities through
# learnable-scale binarizers) by the module swap alone; the patch embedding and the head stay
# real-valued, as in Bi-ViT's released code. Bi-ViT's own blocks (qk-norm,
# ranking-aware distillation) build on this.
# OPs: python tools/analysis/count_ops.py configs/quant/deit-tiny_w1a1-attn1_4xb256_in1k.py
_base_ = 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmext.QuantizedModel',
    model={{_base_.model}},
    quant=dict(
        type='mmext.ModuleSwap',
        w_bits=1,
        a_bits=1,
        attn_bits=1,
        skip=['backbone.patch_embed.projection', 'head.*']))

# The float DeiT-Tiny from mmpretrain's model zoo, kept by the user (72.2 top-1):
# https://download.openmmlab.com/mmclassification/v0/deit/deit-tiny_pt-4xb256_in1k_20220218-13b382a0.pth
load_from = 'checkpoints/deit-tiny_pt-4xb256_in1k_20220218-13b382a0.pth'
