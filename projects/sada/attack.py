"""SADA's selective attack: an adapter's spatial map says where an image may be perturbed."""
from __future__ import annotations

from collections.abc import Callable

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmext.registry import MODELS


@MODELS.register_module()
class SelectiveAttackAdapter(BaseModule):
    """conv 7x7 (3 -> 3), per-pixel channel mean and max, conv 3x3 (2 -> 1), sigmoid.

    Shapes: (B, 3, H, W) images -> (B, 1, H, W) map M in [0, 1]; M = 1 marks what matters
    (kept), M = 0 what may be attacked.
    """

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.conv_in = nn.Conv2d(3, 3, 7, padding=3)
        self.conv_out = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, images: Tensor) -> Tensor:
        x = self.conv_in(images)
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv_out(pooled))


def selective_perturbation(loss_fn: Callable[[Tensor], Tensor], images: Tensor, keep: Tensor,
                           eps: float, steps: int = 1, step_size: float | None = None) -> Tensor:
    """The sign-gradient perturbation of a selective FGSM / PGD attack.

    Args:
        loss_fn: images (B, 3, H, W) in [0, 1] -> the loss to increase (CE of the labels).
        images: (B, 3, H, W) pixels in [0, 1] (before the CLIP's normalisation).
        keep: (B, 1, H, W) the adapter's map M; it is detached here, and the attack acts where
            ``1 - M`` is above zero.
        eps: the L-infinity budget (2/255).
        steps: 1 for FGSM (one step of eps); n for PGD (steps of ``step_size``, eps / 4 unless
            given, projected back to [-eps, eps]).

    Returns:
        delta (B, 3, H, W), ``|delta| <= eps``, to be applied as
        ``clamp(images + (1 - M) * delta, 0, 1)`` with M not detached, so that the adapter's
        map gets the gradient of the attacked loss.
    """
    if eps < 0 or steps < 1:
        raise ValueError(f'need eps >= 0 and steps >= 1, got eps={eps}, steps={steps}')
    step = eps if steps == 1 else (step_size if step_size is not None else eps / 4)
    images = images.detach()
    free = 1 - keep.detach()
    delta = torch.zeros_like(images)
    with torch.enable_grad():
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = loss_fn((images + free * delta).clamp(0, 1))
            grad, = torch.autograd.grad(loss, delta)
            delta = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
    return delta.detach()


def apply_perturbation(images: Tensor, keep: Tensor, delta: Tensor) -> Tensor:
    """``clamp(images + (1 - M) * delta, 0, 1)``; differentiable in M."""
    return (images + (1 - keep) * delta).clamp(0, 1)


@MODELS.register_module()
class AreaPriorLoss(nn.Module):
    """``(mean(M) - rho)^2``: without it, minimising the attacked loss drives M to 1 (nothing
    attacked)."""

    def __init__(self, rho: float = 0.5, loss_weight: float = 1.0):
        super().__init__()
        if not 0 <= rho <= 1:
            raise ValueError(f'rho is a fraction of the image, got {rho}')
        self.rho, self.loss_weight = rho, loss_weight

    def forward(self, keep: Tensor) -> Tensor:
        return self.loss_weight * (keep.mean() - self.rho) ** 2
