"""Decom-CAM (decomposition class activation maps) as a pytorch-grad-cam method.

For one image, target layer activations ``A (C, h, w)`` and their gradients ``G`` w.r.t. the target
score ``y``:

1. channel weights ``alpha_k = mean_ij G_k,ij`` (Grad-CAM's);
2. keep the ``num_channels`` (p) channels with the largest ``alpha_k`` (all if C < p);
3. ``X (h*w, p)``, column k = ``alpha_k vec(A_k)``, columns centred; ``X_c = U S V^T`` (fp32 SVD
   on the model's device);
4. sub-maps ``OSSM_i = reshape(s_i u_i)`` for the first ``num_components`` (n) components, each
   sign flipped so that ``<OSSM_i, Grad-CAM map> >= 0``; ReLU, bicubic upsampling to the input
   size and min-max normalisation give ``M_i``;
5. integration: ``x_i = x * M_i + blur(x) * (1 - M_i)`` (Gaussian blur, sigma 10 px), scores
   ``s_i = y(x_i)``, weights ``w_i = ReLU(s_i - y(blur(x))) / max_j(...)`` (``weighting=
   'reference'``, the default) or, as the released code does, ``w_i = s_i / max_j s_j`` zeroed
   below 1e-3 with ``x_i = max(x * M_i, blur(x) * (1 - M_i))`` (``weighting='released'``);
   saliency ``S = minmax(sum_i w_i M_i)``.

``DecomCAM`` is called like every pytorch-grad-cam method (``target_layers``, ``targets``,
``reshape_transform``, batched, a context manager that releases its hooks) and returns the
saliency maps ``(B, H, W)``; the sub-maps and their weights of the last call are in
``last_sub_maps`` ``(B, n, H, W)`` and ``last_weights`` ``(B, n)``, or use :meth:`explain`. An
image whose weighted activations have a rank r below n has r sub-maps; its other rows are zero
maps with weight 0.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam.base_cam import BaseCAM
from torch import Tensor, nn

from mmext.registry import CAM_METHODS


@dataclass
class Decomposition:
    """The SVD of one image's weighted activations.

    maps: (n, h, w) the signed sub-maps ``s_i u_i`` after the sign rule;
    channels: (p, ) indices of the kept channels; right: (n, p) the rows of ``V^T`` (signs
    flipped with the maps); centred: (h*w, p) ``X_c``; singular: (n, ) ``s_i``.
    """

    maps: Tensor
    channels: Tensor
    right: Tensor
    centred: Tensor
    singular: Tensor


def decompose_activations(activations: Tensor, gradients: Tensor, num_channels: int = 500,
                          num_components: int = 10) -> Decomposition:
    """Steps 1-4 for one image: activations and gradients (C, h, w) -> :class:`Decomposition`."""
    if activations.ndim != 3 or activations.shape != gradients.shape:
        raise ValueError(f'activations and gradients must both be (C, h, w), got '
                         f'{tuple(activations.shape)} and {tuple(gradients.shape)}')
    activations, gradients = activations.float(), gradients.float()
    channels, h, w = activations.shape
    alpha = gradients.mean((1, 2))
    keep = torch.topk(alpha, min(num_channels, channels)).indices
    weighted = activations[keep] * alpha[keep, None, None]  # (p, h, w)
    x = weighted.flatten(1).T  # (h*w, p)
    centred = x - x.mean(0, keepdim=True)
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    # components beyond the rank of X_c (singular values at rounding level) carry nothing
    rank = int((s > s[0] * 1e-5).sum()) if s.numel() and s[0] > 0 else 0
    n = max(min(num_components, rank), 1)
    maps = (u[:, :n] * s[:n]).T.reshape(n, h, w)
    grad_cam = F.relu(weighted.sum(0))
    sign = torch.where((maps * grad_cam).flatten(1).sum(1) < 0, -1.0, 1.0).to(maps)
    return Decomposition(maps * sign[:, None, None], keep, vh[:n] * sign[:, None], centred, s[:n])


def minmax(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-map min-max normalisation over the last two dimensions."""
    low = x.flatten(-2).amin(-1)[..., None, None]
    high = x.flatten(-2).amax(-1)[..., None, None]
    return (x - low) / (high - low + eps)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """(B, C, H, W) images blurred with a Gaussian of ``sigma`` px (kernel 2 * ceil(3 sigma) + 1,
    reflect padding)."""
    from torchvision.transforms.functional import gaussian_blur as blur
    radius = int(np.ceil(3 * sigma))
    size = min(2 * radius + 1, 2 * ((min(images.shape[-2:]) - 1) // 2) + 1)
    return blur(images, [size, size], [sigma, sigma])


@CAM_METHODS.register_module(name='DecomCAM')
class DecomCAM(BaseCAM):
    """Decom-CAM on pytorch-grad-cam's ``BaseCAM`` (see the module docstring).

    Args:
        model: returns (B, K) scores for (B, 3, H, W) images (or, for a CLIP image tower, image
            embeddings that a :class:`~mmext.cam.targets.CLIPTextTarget` scores).
        target_layers: the layers whose activations are decomposed (usually one).
        reshape_transform: (B, N, D) tokens -> (B, D, h, w) for token models
            (:func:`~mmext.cam.layers.token_reshape_transform`).
        num_channels: p, channels kept by Grad-CAM weight (500; the released notebook: 100).
        num_components: n, sub-maps (10).
        blur_sigma: sigma of the blurred reference in pixels (10).
        weighting: ``'reference'`` (default) or ``'released'`` (see the module docstring).
        batch_size: images per forward pass of the integration step.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Callable | None = None, num_channels: int = 500,
                 num_components: int = 10, blur_sigma: float = 10.0,
                 weighting: str = 'reference', batch_size: int = 16):
        if weighting not in ('reference', 'released'):
            raise ValueError(f"weighting must be 'reference' or 'released', not {weighting!r}")
        if num_channels < 1 or num_components < 1:
            raise ValueError(f'num_channels and num_components must be positive, got '
                             f'{num_channels} and {num_components}')
        # the input takes a gradient so that frozen models (a CLIP tower) still give one
        super().__init__(model, list(target_layers), reshape_transform,
                         compute_input_gradient=True)
        self.num_channels, self.num_components = num_channels, num_components
        self.blur_sigma, self.weighting, self.batch_size = blur_sigma, weighting, batch_size
        self.last_sub_maps: np.ndarray | None = None
        self.last_weights: np.ndarray | None = None

    def __call__(self, input_tensor: Tensor, targets=None, aug_smooth: bool = False,
                 eigen_smooth: bool = False) -> np.ndarray:
        """Saliency maps (B, H, W); ``targets=None``: each image's top-scoring class."""
        return super().__call__(input_tensor, targets, aug_smooth, eigen_smooth)

    def forward(self, input_tensor: Tensor, targets=None, eigen_smooth: bool = False):
        if input_tensor.ndim != 4:
            raise ValueError(f'DecomCAM takes a (B, C, H, W) image batch, got shape '
                             f'{tuple(input_tensor.shape)}; add a batch dimension with '
                             'image[None]')
        self._sub_maps, self._weights = [], []
        cam = super().forward(input_tensor, targets, eigen_smooth)
        self.last_sub_maps = np.stack(self._sub_maps, 1).mean(1) if len(self._sub_maps) > 1 \
            else self._sub_maps[0]
        self.last_weights = np.stack(self._weights, 1).mean(1) if len(self._weights) > 1 \
            else self._weights[0]
        return cam

    @torch.no_grad()
    def _scores(self, images: Tensor, target) -> Tensor:
        out = [target(o) for start in range(0, len(images), self.batch_size)
               for o in self.model(images[start:start + self.batch_size])]
        return torch.stack([torch.as_tensor(v, dtype=torch.float32).reshape(()) for v in out])

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads,
                      eigen_smooth=False) -> np.ndarray:
        if grads is None or len(grads) == 0:
            raise RuntimeError('DecomCAM needs the gradients of the target layer; it got none '
                               '(is the layer used in the forward pass, and does the target '
                               'depend on it?)')
        device = self.device
        size = input_tensor.shape[-2:]
        sal, subs, weights = [], [], []
        for b in range(input_tensor.shape[0]):
            parts = decompose_activations(torch.as_tensor(activations[b], device=device),
                                          torch.as_tensor(grads[b], device=device),
                                          self.num_channels, self.num_components)
            maps = F.interpolate(F.relu(parts.maps)[None], size=size, mode='bicubic',
                                 align_corners=False)[0]
            maps = minmax(maps.clamp_min(0))  # (n, H, W)
            x = input_tensor[b:b + 1].to(device)
            blurred = gaussian_blur(x, self.blur_sigma)
            sharp, soft = x * maps[:, None], blurred * (1 - maps[:, None])
            mixed = torch.maximum(sharp, soft) if self.weighting == 'released' else sharp + soft
            scores = self._scores(mixed, targets[b])
            if self.weighting == 'released':
                w = scores / scores.max().clamp_min(1e-12)
                w = torch.where(w < 1e-3, torch.zeros_like(w), w)
            else:
                reference = self._scores(blurred, targets[b])[0]
                gain = F.relu(scores - reference)
                w = gain / gain.max().clamp_min(1e-12)
            w = w.to(maps)
            sal.append(minmax((w[:, None, None] * maps).sum(0)))
            # an image whose weighted activations have a rank below n gets fewer components:
            # zero maps with weight 0 fill its rows, so that a batch stacks to (B, n, H, W)
            missing = self.num_components - len(maps)
            subs.append(F.pad(maps, (0, 0, 0, 0, 0, missing)).cpu().numpy())
            weights.append(F.pad(w, (0, missing)).cpu().numpy())
        self._sub_maps.append(np.stack(subs))
        self._weights.append(np.stack(weights))
        return torch.stack(sal).cpu().numpy()

    def explain(self, input_tensor: Tensor, targets=None) -> dict:
        """``dict(saliency=(B, H, W), sub_maps=(B, n, H, W), weights=(B, n))`` (numpy)."""
        saliency = self(input_tensor, targets)
        return dict(saliency=saliency, sub_maps=self.last_sub_maps, weights=self.last_weights)
