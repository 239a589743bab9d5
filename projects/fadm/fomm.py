"""FOMM (Siarohin et al., NeurIPS 2019) as FADM's frozen coarse animator: keypoints with local
affine Jacobians, a dense motion network and an occlusion-aware generator, with the module
names of the released checkpoints so that ``vox-cpk.pth.tar`` loads through
:func:`fomm_to_mmext`. Written from the paper and the released architecture's description.

Sizes default to FOMM's VoxCeleb 256 configuration (10 keypoints, keypoint hourglass 32 / 1024 /
5 blocks at 1/4 scale, generator 64 / 512 with 2 down blocks and 6 bottleneck blocks, dense
motion hourglass 64 / 1024 / 5 blocks at 1/4 scale, occlusion map).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmext.registry import MODELS


def coordinate_grid(h: int, w: int, like: Tensor) -> Tensor:
    """(h, w, 2) of (x, y) in [-1, 1], corner pixel centres at -1 and 1."""
    y = torch.linspace(-1, 1, h, dtype=like.dtype, device=like.device)
    x = torch.linspace(-1, 1, w, dtype=like.dtype, device=like.device)
    yy, xx = torch.meshgrid(y, x, indexing='ij')
    return torch.stack([xx, yy], -1)


class _ConvNorm(nn.Module):
    """conv -> BatchNorm -> ReLU, with an optional 2x average pool after (down) or nearest x2
    upsampling before (up)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, padding: int = 1, mode: str = ''):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding)
        self.norm = nn.BatchNorm2d(cout, affine=True)
        self.mode = mode
        if mode == 'down':
            self.pool = nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == 'up':
            x = F.interpolate(x, scale_factor=2)
        x = F.relu(self.norm(self.conv(x)))
        return self.pool(x) if self.mode == 'down' else x


class PreActResBlock(nn.Module):
    """Pre-activation residual block, 2-D or 3-D:
    x + conv2(relu(norm2(conv1(relu(norm1(x))))))."""

    def __init__(self, channels: int, dims: int = 2):
        super().__init__()
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        self.conv1 = conv(channels, channels, 3, padding=1)
        self.conv2 = conv(channels, channels, 3, padding=1)
        self.norm1 = norm(channels, affine=True)
        self.norm2 = norm(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class _Encoder(nn.Module):
    def __init__(self, expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            _ConvNorm(in_features if i == 0 else min(max_features, expansion * 2 ** i),
                      min(max_features, expansion * 2 ** (i + 1)), mode='down')
            for i in range(num_blocks))

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class _Decoder(nn.Module):
    def __init__(self, expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * min(max_features, expansion * 2 ** (i + 1))
            blocks.append(_ConvNorm(cin, min(max_features, expansion * 2 ** i), mode='up'))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = expansion + in_features

    def forward(self, skips: list[Tensor]) -> Tensor:
        skips = list(skips)
        x = skips.pop()
        for block in self.up_blocks:
            x = torch.cat([block(x), skips.pop()], 1)
        return x


class Hourglass(nn.Module):
    """U-Net style encoder-decoder; output channels ``expansion + in_features``."""

    def __init__(self, expansion: int, in_features: int, num_blocks: int = 3,
                 max_features: int = 256):
        super().__init__()
        self.encoder = _Encoder(expansion, in_features, num_blocks, max_features)
        self.decoder = _Decoder(expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasDownsample(nn.Module):
    """Gaussian blur (sigma = (1/scale - 1) / 2, kernel 2 round(4 sigma) + 1, buffer
    ``weight``), then every (1/scale)-th pixel."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.ka = size // 2
        self.kb = self.ka - 1 if size % 2 == 0 else self.ka
        axis = torch.arange(size, dtype=torch.float32)
        g = torch.exp(-(axis - (size - 1) / 2) ** 2 / (2 * sigma ** 2))
        kernel = g[:, None] * g[None, :]
        kernel = (kernel / kernel.sum()).view(1, 1, size, size).repeat(channels, 1, 1, 1)
        self.register_buffer('weight', kernel)
        self.groups, self.step = channels, int(1 / scale)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        return F.conv2d(x, self.weight, groups=self.groups)[:, :, ::self.step, ::self.step]


def gaussian_heatmaps(kp: Tensor, h: int, w: int, variance: float) -> Tensor:
    """Keypoints (B, K, 2) -> (B, K, h, w) Gaussians exp(-|p - kp|^2 / (2 variance))."""
    grid = coordinate_grid(h, w, kp)
    return torch.exp(-0.5 * ((grid[None, None] - kp[:, :, None, None]) ** 2).sum(-1) / variance)


class KPDetector(nn.Module):
    """Frames (B, C, H, W) in [0, 1] -> ``{'value': (B, K, 2), 'jacobian': (B, K, 2, 2)}``."""

    def __init__(self, num_kp: int = 10, num_channels: int = 3, block_expansion: int = 32,
                 max_features: int = 1024, num_blocks: int = 5, temperature: float = 0.1,
                 estimate_jacobian: bool = True, scale_factor: float = 0.25):
        super().__init__()
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, 7)
        self.jacobian = None
        if estimate_jacobian:
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * num_kp, 7)
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0, 0, 1]).repeat(num_kp))
        self.temperature, self.num_kp = temperature, num_kp
        if scale_factor != 1:
            self.down = AntiAliasDownsample(num_channels, scale_factor)

    def forward(self, x: Tensor) -> dict:
        if hasattr(self, 'down'):
            x = self.down(x)
        features = self.predictor(x)
        logits = self.kp(features)
        b, k, h, w = logits.shape
        heat = (logits.flatten(2) / self.temperature).softmax(-1).view(b, k, h, w)
        out = {'value': (heat[..., None] * coordinate_grid(h, w, x)).sum((2, 3))}
        if self.jacobian is not None:
            jac = self.jacobian(features).view(b, k, 4, h, w)
            out['jacobian'] = (jac * heat[:, :, None]).sum((3, 4)).view(b, k, 2, 2)
        return out


class DenseMotionNetwork(nn.Module):
    """Backward flow (B, h, w, 2) and occlusion map (B, 1, h, w) from the source and the two
    keypoint sets (first-order motion around each keypoint, plus the identity)."""

    def __init__(self, num_kp: int = 10, num_channels: int = 3, block_expansion: int = 64,
                 num_blocks: int = 5, max_features: int = 1024,
                 estimate_occlusion_map: bool = True, scale_factor: float = 0.25,
                 kp_variance: float = 0.01, align_corners: bool = False):
        super().__init__()
        self.hourglass = Hourglass(block_expansion, (num_kp + 1) * (num_channels + 1),
                                   num_blocks, max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, 7, padding=3)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, 7, padding=3) \
            if estimate_occlusion_map else None
        self.num_kp, self.kp_variance, self.align_corners = num_kp, kp_variance, align_corners
        if scale_factor != 1:
            self.down = AntiAliasDownsample(num_channels, scale_factor)

    def forward(self, source: Tensor, kp_driving: dict, kp_source: dict) -> dict:
        if hasattr(self, 'down'):
            source = self.down(source)
        b, c, h, w = source.shape
        heat = gaussian_heatmaps(kp_driving['value'], h, w, self.kp_variance) - \
            gaussian_heatmaps(kp_source['value'], h, w, self.kp_variance)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], 1)[:, :, None]
        grid = coordinate_grid(h, w, source)
        rel = grid[None, None] - kp_driving['value'][:, :, None, None]        # (B, K, h, w, 2)
        if 'jacobian' in kp_driving:
            jac = kp_source['jacobian'] @ torch.inverse(kp_driving['jacobian'])
            rel = (jac[:, :, None, None] @ rel[..., None])[..., 0]
        motions = rel + kp_source['value'][:, :, None, None]
        motions = torch.cat([grid[None, None].expand(b, 1, h, w, 2), motions], 1)
        deformed = F.grid_sample(
            source.repeat_interleave(self.num_kp + 1, 0), motions.flatten(0, 1),
            align_corners=self.align_corners).view(b, self.num_kp + 1, c, h, w)
        features = self.hourglass(torch.cat([heat, deformed], 2).flatten(1, 2))
        mask = self.mask(features).softmax(1)
        out = {'deformation': (mask[..., None] * motions).sum(1)}
        if self.occlusion is not None:
            out['occlusion_map'] = torch.sigmoid(self.occlusion(features))
        return out


class OcclusionAwareGenerator(nn.Module):
    """Encodes the source, warps its features by the dense motion, masks occluded parts, decodes
    the driving frame (B, C, H, W) in [0, 1]."""

    def __init__(self, num_kp: int = 10, num_channels: int = 3, block_expansion: int = 64,
                 max_features: int = 512, num_down_blocks: int = 2,
                 num_bottleneck_blocks: int = 6, estimate_occlusion_map: bool = True,
                 dense_motion_params: dict | None = None, align_corners: bool = False):
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(
            num_kp, num_channels, estimate_occlusion_map=estimate_occlusion_map,
            align_corners=align_corners, **(dense_motion_params or {}))
        self.first = _ConvNorm(num_channels, block_expansion, kernel=7, padding=3)
        self.down_blocks = nn.ModuleList(
            _ConvNorm(min(max_features, block_expansion * 2 ** i),
                      min(max_features, block_expansion * 2 ** (i + 1)), mode='down')
            for i in range(num_down_blocks))
        n = num_down_blocks
        self.up_blocks = nn.ModuleList(
            _ConvNorm(min(max_features, block_expansion * 2 ** (n - i)),
                      min(max_features, block_expansion * 2 ** (n - i - 1)), mode='up')
            for i in range(n))
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f'r{i}', PreActResBlock(min(max_features,
                                                               block_expansion * 2 ** n)))
        self.final = nn.Conv2d(block_expansion, num_channels, 7, padding=3)
        self.align_corners = align_corners

    def warp(self, x: Tensor, flow: Tensor) -> Tensor:
        if flow.shape[1:3] != x.shape[2:]:
            flow = F.interpolate(flow.permute(0, 3, 1, 2), size=x.shape[2:], mode='bilinear',
                                 align_corners=False).permute(0, 2, 3, 1)
        return F.grid_sample(x, flow, align_corners=self.align_corners)

    def forward(self, source: Tensor, kp_driving: dict, kp_source: dict) -> Tensor:
        x = self.first(source)
        for block in self.down_blocks:
            x = block(x)
        motion = self.dense_motion_network(source, kp_driving, kp_source)
        x = self.warp(x, motion['deformation'])
        if 'occlusion_map' in motion:
            occlusion = motion['occlusion_map']
            if occlusion.shape[2:] != x.shape[2:]:
                occlusion = F.interpolate(occlusion, size=x.shape[2:], mode='bilinear',
                                          align_corners=False)
            x = x * occlusion
        x = self.bottleneck(x)
        for block in self.up_blocks:
            x = block(x)
        return torch.sigmoid(self.final(x))


@MODELS.register_module()
class FOMMAnimator(BaseModel):
    """FOMM as a frozen coarse animator: ``forward(source, driving, mode='tensor')`` with frames
    (B, 3, H, W) in [-1, 1] -> the animated frames, same range. Absolute keypoints (FOMM's
    same-identity reconstruction); load the released weights with ``checkpoint`` (converted on
    the fly by :func:`fomm_to_mmext`).

    Args:
        kp_detector, generator: keyword arguments of :class:`KPDetector` and
            :class:`OcclusionAwareGenerator` (defaults: FOMM's vox-256).
        checkpoint: FOMM's ``vox-cpk.pth.tar`` (or any file with ``kp_detector`` and
            ``generator`` state dicts); read when the model is built.
    """

    def __init__(self, kp_detector: dict | None = None, generator: dict | None = None,
                 checkpoint: str | None = None, data_preprocessor: dict | None = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.kp_detector = KPDetector(**(kp_detector or {}))
        self.generator = OcclusionAwareGenerator(**(generator or {}))
        if checkpoint:
            from .convert import load_fomm
            self.load_state_dict(load_fomm(checkpoint, self))
        self.eval()

    def forward(self, source: Tensor, driving: Tensor, mode: str = 'tensor', **_):
        if mode != 'tensor':
            raise ValueError('FOMMAnimator is a frozen animator: only mode="tensor"')
        s, d = (source + 1) / 2, (driving + 1) / 2
        frames = self.generator(s, self.kp_detector(d), self.kp_detector(s))
        return frames * 2 - 1
