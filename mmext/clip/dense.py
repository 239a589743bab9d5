"""Per-pixel CLIP image features that live in the text space (MaskCLIP's trick, Zhou et al., 2022).

``dense_image_features(visual, images)`` returns, for an open_clip image tower,

- dense: (B, D, h, w), one joint-space embedding per patch or feature-map cell;
- global: (B, D), the tower's ordinary image embedding, from the same pass.

Towers:

- ``VisionTransformer``: all blocks but the last as usual; in the last block the query-key
  attention is skipped and each token's value ``W_v LN(x)`` goes through the attention output
  projection, ``ln_post`` and ``proj``. The positional embedding is interpolated to the input's
  patch grid, so any image size works.
- ``TimmModel`` with average pooling: the head (dropout + linear projection) applied to every cell
  of the trunk's final feature map. For a linear head the mean of the dense features is exactly
  the global embedding.
- ``ModifiedResNet`` (CLIP RN50, ...): the attention pool's value and output projections as 1x1
  convolutions on the last feature map.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _vit_positional_embedding(visual: nn.Module, grid: tuple[int, int]) -> Tensor:
    pos = visual.positional_embedding  # (1 + g*g, W)
    cls_pos, patch_pos = pos[:1], pos[1:]
    side = int(round(patch_pos.shape[0] ** 0.5))
    if (side, side) == tuple(grid):
        return pos
    patch_pos = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=grid, mode='bicubic', align_corners=False)
    return torch.cat([cls_pos, patch_pos.flatten(2).transpose(1, 2)[0]])


def _vit_dense(visual: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    x = visual.conv1(images)
    grid = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + _vit_positional_embedding(visual, grid).to(x.dtype)
    x = visual.ln_pre(x)
    blocks = visual.transformer.resblocks
    batch_first = getattr(visual.transformer, 'batch_first', True)
    if not batch_first:
        x = x.transpose(0, 1)
    for block in blocks[:-1]:
        x = block(x)
    last = blocks[-1]
    attn = getattr(last, 'attn', None)
    if not isinstance(attn, nn.MultiheadAttention):
        raise NotImplementedError(
            f'dense features need nn.MultiheadAttention in the last ViT block, found '
            f'{type(attn).__name__}')
    # value path of the last block (MaskCLIP)
    width = attn.embed_dim
    w_v = attn.in_proj_weight[2 * width:]
    b_v = attn.in_proj_bias[2 * width:] if attn.in_proj_bias is not None else None
    values = attn.out_proj(F.linear(last.ln_1(x), w_v, b_v))
    full = last(x)
    if not batch_first:
        values, full = values.transpose(0, 1), full.transpose(0, 1)
    pooled, _ = visual._pool(full)
    dense = visual.ln_post(values[:, 1:])
    if visual.proj is not None:
        pooled, dense = pooled @ visual.proj, dense @ visual.proj
    dense = dense.transpose(1, 2).reshape(dense.shape[0], -1, *grid)
    return dense, pooled


def _timm_dense(visual: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    if 'pool' in visual.head._modules:  # abs_attn / rot_attn pooling
        raise NotImplementedError('dense features of a timm tower with attention pooling')
    feats = visual.trunk.forward_features(images)  # (B, C, h, w)
    if feats.ndim != 4:
        raise NotImplementedError(f'dense features need a convolutional timm trunk; '
                                  f'{type(visual.trunk).__name__} gives {tuple(feats.shape)}')
    dense = visual.head(feats.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    pooled = visual.head(visual.trunk.forward_head(feats, pre_logits=True))
    return dense.contiguous(), pooled


def _resnet_dense(visual: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    x = visual.stem(images)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = layer(x)
    pool = visual.attnpool
    cells = x.permute(0, 2, 3, 1)
    dense = pool.c_proj(pool.v_proj(cells)).permute(0, 3, 1, 2)
    return dense.contiguous(), pool(x)


def dense_image_features(visual: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """Dense (B, D, h, w) and global (B, D) joint-space features of an open_clip image tower."""
    kind = type(visual).__name__
    if kind == 'VisionTransformer':
        return _vit_dense(visual, images)
    if kind == 'TimmModel':
        return _timm_dense(visual, images)
    if kind == 'ModifiedResNet':
        return _resnet_dense(visual, images)
    raise NotImplementedError(
        f'dense CLIP features are implemented for VisionTransformer, TimmModel and '
        f'ModifiedResNet image towers, not {kind}')
