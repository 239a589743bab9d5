"""AGCN, FADM's attribute-guided conditioning network (spec 11.2): it turns the coarse frame,
the diffusion timestep and the attribute difference into the condition image of the denoiser.

Sizes scale with ``image_size``: the paper's 256 x 256 uses a low-pass at 32 and warp scales
32 / 64 / 128; the demo's 32 x 32 uses 4 and 4 / 8 / 16 (the same ratios).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import Tensor, nn

from mmext.registry import MODELS


def resample(image: Tensor, size: int, out: int) -> Tensor:
    """``up_out(down_size(image))`` (bilinear both ways): keeps the content below ``size``."""
    small = F.interpolate(image, size=size, mode='bilinear', align_corners=False,
                          antialias=True)
    return F.interpolate(small, size=out, mode='bilinear', align_corners=False)


def motion_weights(w: Tensor, num_scales: int) -> list[Tensor]:
    """Per scale i of K: ``((K - i) / K) exp(w - 0.3) + (i / K) exp(0.3 - w)``, i = 0..K-1:
    the coarsest scale follows large w (large motion), the finest small w."""
    k = num_scales
    return [((k - i) / k) * torch.exp(w - 0.3) + (i / k) * torch.exp(0.3 - w) for i in range(k)]


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with an identity shortcut; ``emb`` (B, E) adds a per-channel
    bias after the first conv (SR3's conditional block)."""

    def __init__(self, channels: int, emb_dim: int | None = None, groups: int = 8):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(groups, channels), nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, channels) if emb_dim else None

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        return x + self.conv2(F.silu(self.norm2(h)))


@MODELS.register_module()
class AGCN(nn.Module):
    """Attribute-guided conditioning network.

    Args:
        in_channels: image channels (3 for faces, 1 for the demo).
        num_attributes: length of the attribute difference (56: DECA expression 50 + pose 6).
        image_size: frame size (square).
        lowpass_size: the colour branch's low-pass size (``up(down_lowpass(.))``).
        scales: the warp branch's sizes, coarsest first (K = len(scales)).
        channels: the colour and warp features (16); the fusion uses twice that.
        time_dim: the sinusoidal timestep embedding's size.

    ``forward(coarse, reference, t, attributes[, colour])``: coarse and reference frames
    (B, C, H, W) in [-1, 1], timesteps (B,), attributes (B, A) (source minus target), optionally
    the precomputed :meth:`colour_features` ->
    ``(condition (B, C, H, W) in [-1, 1], feature loss)``; the loss is
    ``mean |phi(LP(coarse)) - phi(LP(reference))|`` (zero when the reference is the coarse
    frame, the setting spec 11.2 proposes).
    """

    def __init__(self, in_channels: int = 3, num_attributes: int = 56, image_size: int = 256,
                 lowpass_size: int = 32, scales: Sequence[int] = (32, 64, 128),
                 channels: int = 16, time_dim: int = 64):
        super().__init__()
        self.in_channels, self.num_attributes = in_channels, num_attributes
        self.image_size, self.lowpass_size, self.scales = image_size, lowpass_size, tuple(scales)
        self.time_dim = time_dim
        self.colour = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1),
                                    ResBlock(channels), ResBlock(channels))
        self.motion_mlp = nn.Sequential(nn.Linear(time_dim + num_attributes, 64), nn.SiLU(),
                                        nn.Linear(64, channels))
        self.pool = nn.AdaptiveMaxPool1d(channels)
        self.warp_stems = nn.ModuleList(nn.Conv2d(in_channels, channels, 3, padding=1)
                                        for _ in self.scales)
        self.warp_blocks = nn.ModuleList(ResBlock(channels, time_dim) for _ in self.scales)
        self.fuse_in = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)
        self.fuse = nn.ModuleList(ResBlock(2 * channels) for _ in range(3))
        self.fuse_out = nn.Conv2d(2 * channels, in_channels, 7, padding=3)

    def weights(self, t: Tensor, attributes: Tensor) -> Tensor:
        """(B,) timesteps, (B, A) attributes -> w (B, channels):
        ``sigmoid(MLP([temb(t); a])) + 0.4 AdaptiveMaxPool(a)``."""
        temb = get_timestep_embedding(t, self.time_dim)
        w = torch.sigmoid(self.motion_mlp(torch.cat([temb, attributes], 1)))
        return w + 0.4 * self.pool(attributes[:, None])[:, 0]

    def colour_features(self, coarse: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
        """``(f_g, f_d)`` (B, channels, H, W): the colour branch on the low-passed coarse and
        reference frames (independent of the timestep: a sampler computes them once)."""
        size = coarse.shape[-1]
        if coarse.shape[1] != self.in_channels or size != self.image_size:
            raise ValueError(f'AGCN expects frames (B, {self.in_channels}, {self.image_size}, '
                             f'{self.image_size}), got {tuple(coarse.shape)}')
        return (self.colour(resample(coarse, self.lowpass_size, size)),
                self.colour(resample(reference, self.lowpass_size, size)))

    def forward(self, coarse: Tensor, reference: Tensor, t: Tensor, attributes: Tensor,
                colour: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        size = coarse.shape[-1]
        if attributes.shape != (coarse.shape[0], self.num_attributes):
            raise ValueError(f'attributes must be (B, {self.num_attributes}) (source minus '
                             f'target), got {tuple(attributes.shape)}')
        f_g, f_d = colour if colour is not None else self.colour_features(coarse, reference)
        temb = get_timestep_embedding(t, self.time_dim)
        warp = 0
        for w_i, stem, block, scale in zip(motion_weights(self.weights(t, attributes),
                                                          len(self.scales)),
                                           self.warp_stems, self.warp_blocks, self.scales):
            h = block(stem(resample(coarse, scale, size)), temb) + 0.4 * f_g
            warp = warp + w_i[:, :, None, None] * h
        h = self.fuse_in(torch.cat([warp, f_g + 0.2 * f_d], 1))
        for block in self.fuse:
            h = block(h)
        condition = torch.sigmoid(self.fuse_out(h)) * 2 - 1
        return condition, (f_g - f_d).abs().mean()
