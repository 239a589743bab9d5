"""Bi-ViT's fully binarized transformer by module swap.

``BiViTSwap`` is a :class:`mmext.quant.ModuleSwap` at W-A-Attn 1-1-1 for mmpretrain's
``VisionTransformer`` (DeiT) and ``SwinTransformer``:

- every Linear (qkv, proj, fc1, fc2, Swin's patch-merging reduction): weights ``mean|W| sign(W)``
  per output row, inputs ``sign`` with the ApproxSign estimator, **bias kept**;
- q, k, v (after a per-head LayerNorm on q and k, "qk-norm") and the softmax output P through a
  per-head learnable-scale binarizer ``s (sign(x / s + z) - z)``: the learnable scaling factor
  (with zero point) that moves values back into the range where the estimator passes gradient;
- patch embedding, position embeddings, LayerNorms, softmax, GELU and the classifier stay
  real-valued by default.

``learnable_scale=False`` is the binary baseline of the ablation: the same binarizers, their
scale and zero point fixed at the data-driven initial values (``2 mean|x|`` per head; zero, or
the uniform-attention threshold for P) instead of learnt.
"""
from __future__ import annotations

import torch
from torch import nn

from mmext.quant import ModuleSwap
from mmext.quant.attention import QuantizedSDPA
from mmext.registry import MODELS, QUANTIZERS

PATCH_EMBED = 'backbone.patch_embed.projection'
CLASSIFIER = 'head.*'


@MODELS.register_module()
class HeadLayerNorm(nn.Module):
    """LayerNorm over the last dim of per-head tensors (B, H, N, d), one affine (d) for all
    heads: Bi-ViT's qk-norm."""

    def __init__(self, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(head_dim, eps=eps)

    def as_layer_norm(self) -> nn.LayerNorm:
        """The LayerNorm this module's forward applies, whole (the low-bit runtime fuses it with
        the binarizer after it: ``mmext.quant.runtime.layer_norm_of``)."""
        return self.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.norm.normalized_shape[0]:
            raise ValueError(f'HeadLayerNorm for head dim {self.norm.normalized_shape[0]} got a '
                             f'tensor of shape {tuple(x.shape)}')
        return self.norm(x)


def attention_cores(model: nn.Module) -> dict[str, tuple[nn.Module, QuantizedSDPA]]:
    """{owner name: (owner, its QuantizedSDPA)} for the attention modules of a swapped model
    (mmpretrain's MultiheadAttention holds it as ``scaled_dot_product_attention``, the Swin
    twin as ``attention``)."""
    cores = {}
    for name, module in model.named_modules():
        for attr in ('scaled_dot_product_attention', 'attention'):
            core = getattr(module, attr, None)
            if isinstance(core, QuantizedSDPA):
                cores[name] = (module, core)
    return cores


@QUANTIZERS.register_module()
class BiViTSwap(ModuleSwap):
    """Turn a stock mmpretrain ViT / Swin classifier into Bi-ViT.

    Args:
        learnable_scale: learn the scale and zero point of the q, k, v and P binarizers
            (Bi-ViT) or keep them at their initial values (the binary baseline).
        qk_norm: a :class:`HeadLayerNorm` on q and k before their binarizers.
        binary_patch_embed: binarize the patch embedding too (it stays real-valued in the
            released code; the OPs claim suggests it was binary).
        skip: modules kept real-valued (default: the patch embedding unless
            ``binary_patch_embed``, and the classifier).
        w_bits, a_bits, attn_bits, overrides, fused: as :class:`ModuleSwap` (1, 1, 1).
    """

    def __init__(self, learnable_scale: bool = True, qk_norm: bool = True,
                 binary_patch_embed: bool = False, skip: list[str] | None = None,
                 w_bits: int = 1, a_bits: int = 1, attn_bits: int = 1, **kwargs):
        if skip is None:
            skip = [CLASSIFIER] if binary_patch_embed else [PATCH_EMBED, CLASSIFIER]
        super().__init__(w_bits=w_bits, a_bits=a_bits, attn_bits=attn_bits, skip=skip, **kwargs)
        self.learnable_scale, self.qk_norm = learnable_scale, qk_norm

    def __call__(self, model: nn.Module) -> nn.Module:
        model = super().__call__(model)
        cores = attention_cores(model)
        if not cores:
            raise ValueError('BiViTSwap found no quantized attention: the model needs '
                             "mmpretrain's MultiheadAttention or WindowMSA, and attn_bits < 32")
        for owner, core in cores.values():
            if self.qk_norm:
                head_dim = owner.embed_dims // owner.num_heads
                device = next(owner.parameters()).device
                core.q_transform = HeadLayerNorm(head_dim).to(device)
                core.k_transform = HeadLayerNorm(head_dim).to(device)
            if not self.learnable_scale:
                for quantizer in (core.q_quantizer, core.k_quantizer, core.v_quantizer,
                                  core.prob_quantizer):
                    for param in ('scale', 'zero_point'):
                        if hasattr(quantizer, param):
                            getattr(quantizer, param).requires_grad_(False)
        return model
