"""The demo's coarse animator: a small keypoint-and-dense-motion network (FOMM's design at
32 x 32, zero-order motion) trained here on moving Fashion-MNIST, so its artefacts are real.

Keypoints come from heatmaps by soft-argmax on source and driving; each keypoint proposes the
translation that carries its driving position back to its source position; a small network
blends the proposals (plus the identity) into one backward flow and an occlusion map from the
proposals' warped sources; a refinement network turns the warped source into the frame.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmext.registry import MODELS


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


def identity_grid(batch: int, size: int, like: Tensor) -> Tensor:
    """(B, H, W, 2) grid of pixel centres in [-1, 1] (x, y), ``align_corners=True``."""
    line = torch.linspace(-1, 1, size, dtype=like.dtype, device=like.device)
    y, x = torch.meshgrid(line, line, indexing='ij')
    return torch.stack([x, y], -1)[None].expand(batch, -1, -1, -1)


class KeypointDetector(nn.Module):
    """Frames (B, C, H, W) -> keypoints (B, K, 2) in [-1, 1] (soft-argmax of K heatmaps)."""

    def __init__(self, in_channels: int = 1, num_keypoints: int = 8, channels: int = 32,
                 temperature: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(_block(in_channels, channels), _block(channels, channels),
                                 nn.Conv2d(channels, num_keypoints, 3, padding=1))
        self.temperature = temperature

    def forward(self, frames: Tensor) -> Tensor:
        heat = self.net(frames)
        b, k, h, w = heat.shape
        prob = (heat.flatten(2) / self.temperature).softmax(-1).view(b, k, h, w, 1)
        grid = identity_grid(1, h, frames)[:, None]                     # (1, 1, H, W, 2)
        return (prob * grid).sum((2, 3))


@MODELS.register_module()
class KeypointAnimator(BaseModel):
    """Coarse animator ``A(source, driving) -> frame`` for 1- or 3-channel frames in [-1, 1].

    Trained with L1 to the driving frame (``mode='loss'`` with ``source`` and ``driving``);
    ``mode='tensor'`` returns the animated frames (B, C, H, W).
    """

    def __init__(self, in_channels: int = 1, num_keypoints: int = 8, channels: int = 32,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.num_keypoints = num_keypoints
        self.keypoints = KeypointDetector(in_channels, num_keypoints, channels)
        proposals = num_keypoints + 1
        self.motion = nn.Sequential(
            _block(proposals * in_channels + num_keypoints, channels),
            _block(channels, channels), _block(channels, channels),
            nn.Conv2d(channels, proposals + 1, 3, padding=1))           # masks + occlusion
        self.refine = nn.Sequential(_block(in_channels + 1, channels), _block(channels, channels),
                                    nn.Conv2d(channels, in_channels, 3, padding=1))

    def animate(self, source: Tensor, driving: Tensor) -> Tensor:
        b, c, h, _ = source.shape
        kp_s, kp_d = self.keypoints(source), self.keypoints(driving)
        base = identity_grid(b, h, source)
        # proposal k reads the source at p + (kp_s_k - kp_d_k); proposal 0 is the identity
        shifts = torch.cat([torch.zeros_like(kp_s[:, :1]), kp_s - kp_d], 1)   # (B, K+1, 2)
        grids = base[:, None] + shifts[:, :, None, None]                        # (B, K+1, H, W, 2)
        warped = F.grid_sample(
            source.repeat_interleave(self.num_keypoints + 1, 0),
            grids.flatten(0, 1), align_corners=True, padding_mode='border').view(b, -1, h, h)
        gauss = torch.exp(-((base[:, None] - kp_d[:, :, None, None]) ** 2).sum(-1) / 0.02)
        out = self.motion(torch.cat([warped, gauss], 1))
        masks, occlusion = out[:, :-1].softmax(1), torch.sigmoid(out[:, -1:])
        flow = (masks[..., None] * grids).sum(1)                                # (B, H, W, 2)
        moved = F.grid_sample(source, flow, align_corners=True, padding_mode='border')
        return (moved * occlusion + self.refine(torch.cat([moved, occlusion], 1))
                * (1 - occlusion)).clamp(-1, 1)

    def forward(self, source: Tensor, driving: Tensor, mode: str = 'tensor', **batch):
        if source.shape != driving.shape:
            raise ValueError(f'source {tuple(source.shape)} and driving {tuple(driving.shape)} '
                             'frames must have the same shape')
        frames = self.animate(source, driving)
        if mode == 'loss':
            return {'loss_l1': F.l1_loss(frames, driving)}
        if mode == 'predict':
            ids, steps = batch.get('sequence_id'), batch.get('frame')
            return [dict(pred=f[None], gt=d,
                         sequence_id=int(ids[i]) if ids is not None else None,
                         frame=int(steps[i]) if steps is not None else 0)
                    for i, (f, d) in enumerate(zip(frames, driving))]
        return frames
