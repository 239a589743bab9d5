"""Faithfulness and localisation measures of saliency maps (per image; the stratified metric of
the Decom-CAM protocol averages them over subsets).

- ``average_drop(full, explained)``: ``100 * max(0, Y - O) / Y``, with ``Y`` the target
  probability on the image and ``O`` on the image multiplied by its saliency map (Grad-CAM++'s
  Average Drop, per image);
- ``increase_in_confidence(full, explained)``: ``100 * 1[O > Y]``;
- ``deletion_insertion(score, image, saliency, baseline, steps)``: RISE's curves. Deletion
  replaces the most salient pixels first by the baseline, insertion copies the most salient
  pixels first from the image into the baseline; each curve holds ``steps + 1`` scores at the
  fractions ``0, 1/steps, ..., 1`` of pixels changed, and its AUC is the trapezoid area over
  ``[0, 1]`` (lower deletion and higher insertion are better);
- ``energy_pointing_game(saliency, mask)``: the share of the saliency's mass inside the
  ground-truth region (Score-CAM's energy-based pointing game).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def average_drop(full: Tensor, explained: Tensor) -> Tensor:
    """(B, ) probabilities -> (B, ) Average Drop in percent."""
    return 100 * (full - explained).clamp_min(0) / full.clamp_min(1e-12)


def increase_in_confidence(full: Tensor, explained: Tensor) -> Tensor:
    """(B, ) probabilities -> (B, ) 100 where the explained image scores higher, else 0."""
    return 100 * (explained > full).float()


def energy_pointing_game(saliency: Tensor, mask: Tensor) -> Tensor:
    """(B, H, W) non-negative maps and (B, H, W) boolean regions -> (B, ) mass share inside."""
    if saliency.shape != mask.shape:
        raise ValueError(f'saliency {tuple(saliency.shape)} and mask {tuple(mask.shape)} differ')
    total = saliency.flatten(1).sum(1)
    inside = (saliency * mask).flatten(1).sum(1)
    return inside / total.clamp_min(1e-12)


@torch.no_grad()
def deletion_insertion(score: Callable[[Tensor], Tensor], image: Tensor, saliency: Tensor,
                       baseline: Tensor, steps: int = 20, batch_size: int = 21) -> dict:
    """Deletion and insertion curves of one image.

    Args:
        score: (N, C, H, W) -> (N, ) target scores (e.g. the class probability).
        image, baseline: (C, H, W); saliency: (H, W), higher = more relevant (ties keep the
            row-major order).

    Returns:
        ``dict(deletion=(steps + 1, ), insertion=(steps + 1, ), deletion_auc, insertion_auc)``.
    """
    if image.shape != baseline.shape or image.shape[-2:] != saliency.shape:
        raise ValueError(f'image {tuple(image.shape)}, baseline {tuple(baseline.shape)} and '
                         f'saliency {tuple(saliency.shape)} do not match')
    pixels = saliency.numel()
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(pixels, device=order.device)
    counts = [round(k * pixels / steps) for k in range(steps + 1)]
    curves = {}
    for name, start, end in (('deletion', image, baseline), ('insertion', baseline, image)):
        frames = torch.stack([torch.where((rank < n).view(saliency.shape), end, start)
                              for n in counts])
        values = torch.cat([score(frames[i:i + batch_size])
                            for i in range(0, len(frames), batch_size)]).float().cpu()
        curves[name] = values.numpy()
        curves[f'{name}_auc'] = float(np.trapezoid(values.numpy(), dx=1 / steps))
    return curves
