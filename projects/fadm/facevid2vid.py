"""face-vid2vid (Wang et al., CVPR 2021) as FADM's frozen coarse animator, in the layout of the
public re-implementation whose ``vox-256-spade`` checkpoint (``00000189-checkpoint.pth.tar``;
parts ``kp_detector``, ``he_estimator``, ``generator``) users have, so that it loads through
:func:`projects.fadm.convert.facevid2vid_to_mmext`. NVIDIA released no weights of its own.
Written from the paper and that implementation's architecture as described in words.

The model: canonical 3-D keypoints ``c`` (B, K, 3) from the source alone; a head-pose and
expression estimator gives each frame's rotation (yaw, pitch, roll from 66 bins of 3 degrees),
translation and per-keypoint expression offsets; a frame's keypoints are ``R c + t + delta``.
The generator lifts the source to a 3-D feature volume, warps it by a dense 3-D motion predicted
from the source and driving keypoints, masks occlusions and decodes with a SPADE decoder.

Sizes default to the checkpoint's configuration (15 keypoints, feature volume 32 channels x 16
depth at 64 x 64, SPADE decoder 256 -> 64 channels).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

from mmext.registry import MODELS

from .fomm import AntiAliasDownsample, PreActResBlock

# The re-implementation converts degrees with 3.14, not pi; kept so its checkpoint's keypoints
# come out where it trained them.
_PI_OF_THE_CHECKPOINT = 3.14


def coordinate_grid_3d(d: int, h: int, w: int, like: Tensor) -> Tensor:
    """(d, h, w, 3) of (x, y, z) in [-1, 1]: x along w, y along h, z along d."""
    axes = [torch.linspace(-1, 1, n, dtype=like.dtype, device=like.device) for n in (d, h, w)]
    zz, yy, xx = torch.meshgrid(*axes, indexing='ij')
    return torch.stack([xx, yy, zz], -1)


def gaussian_volumes(kp: Tensor, d: int, h: int, w: int, variance: float) -> Tensor:
    """Keypoints (B, K, 3) -> (B, K, d, h, w) Gaussians exp(-|p - kp|^2 / (2 variance))."""
    grid = coordinate_grid_3d(d, h, w, kp)
    diff = grid[None, None] - kp[:, :, None, None, None]
    return torch.exp(-0.5 * (diff ** 2).sum(-1) / variance)


class ConvNormAct(nn.Module):
    """2-D or 3-D ``conv -> BatchNorm -> (leaky) ReLU``; ``resample='down'`` average-pools by 2
    after (height and width only in 3-D), ``'up'`` doubles height and width (nearest) before.
    Attributes ``conv``, ``norm`` (and ``pool``) as in the checkpoint."""

    def __init__(self, cin: int, cout: int, dims: int = 2, kernel: int = 3, padding: int = 1,
                 resample: str = '', leaky: bool = False):
        super().__init__()
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        self.conv = conv(cin, cout, kernel, padding=padding)
        self.norm = norm(cout, affine=True)
        self.dims, self.resample, self.leaky = dims, resample, leaky
        if resample == 'down':
            self.pool = nn.AvgPool2d(2) if dims == 2 else nn.AvgPool3d((1, 2, 2))

    def forward(self, x: Tensor) -> Tensor:
        if self.resample == 'up':
            x = F.interpolate(x, scale_factor=2 if self.dims == 2 else (1, 2, 2))
        x = self.norm(self.conv(x))
        x = F.leaky_relu(x, 0.01) if self.leaky else F.relu(x)
        return self.pool(x) if self.resample == 'down' else x


class ResBottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 bottleneck at a quarter of the width, BatchNorm after each,
    a strided 1x1 projection (``skip``, ``norm4``) when the stride is not 1, ReLU after the sum."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        mid = channels // 4
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(mid, channels, 1)
        self.norm1, self.norm2 = nn.BatchNorm2d(mid), nn.BatchNorm2d(mid)
        self.norm3 = nn.BatchNorm2d(channels)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(channels, channels, 1, stride=stride)
            self.norm4 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        shortcut = self.norm4(self.skip(x)) if self.stride != 1 else x
        return F.relu(out + shortcut)


def _width(expansion: int, level: int, max_features: int) -> int:
    return min(max_features, expansion * 2 ** level)


class Hourglass3d(nn.Module):
    """3-D U-Net (``encoder.down_blocks``, ``decoder.up_blocks``, ``decoder.conv/norm``): input
    (B, in_features, D, H, W) -> (B, expansion + in_features, D, H, W); resampling acts on H and
    W only."""

    def __init__(self, expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.down_blocks = nn.ModuleList(
            ConvNormAct(in_features if i == 0 else _width(expansion, i, max_features),
                        _width(expansion, i + 1, max_features), dims=3, resample='down')
            for i in range(num_blocks))
        self.decoder = nn.Module()
        self.decoder.up_blocks = nn.ModuleList(
            ConvNormAct((1 if i == num_blocks - 1 else 2) * _width(expansion, i + 1, max_features),
                        _width(expansion, i, max_features), dims=3, resample='up')
            for i in reversed(range(num_blocks)))
        self.out_filters = expansion + in_features
        self.decoder.conv = nn.Conv3d(self.out_filters, self.out_filters, 3, padding=1)
        self.decoder.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        skips = [x]
        for block in self.encoder.down_blocks:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.decoder.up_blocks:
            out = torch.cat([block(out), skips.pop()], 1)
        return F.relu(self.decoder.norm(self.decoder.conv(out)))


class CanonicalKeypointDetector(nn.Module):
    """Source frames (B, 3, H, W) in [0, 1] -> canonical keypoints ``{'value': (B, K, 3)}`` in
    (x, y, z), each the expectation of a softmax (temperature) over a (D, H/4, W/4) volume.

    2-D encoder (``predictor.down_blocks.down{i}``), a 1x1 conv to ``reshape_channel`` channels
    viewed as (reshape_channel / reshape_depth, reshape_depth) volumes, 3-D decoder
    (``predictor.up_blocks.up{i}``), ``kp`` Conv3d."""

    def __init__(self, num_kp: int = 15, image_channel: int = 3, block_expansion: int = 32,
                 max_features: int = 1024, num_blocks: int = 5, reshape_channel: int = 16384,
                 reshape_depth: int = 16, temperature: float = 0.1, scale_factor: float = 0.25):
        super().__init__()
        deepest = _width(block_expansion, num_blocks, max_features)
        if reshape_channel != deepest * reshape_depth:
            raise ValueError(f'reshape_channel ({reshape_channel}) must be the encoder\'s '
                             f'deepest width x reshape_depth ({deepest} x {reshape_depth})')
        self.predictor = nn.Module()
        self.predictor.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.predictor.down_blocks.add_module(f'down{i}', ConvNormAct(
                image_channel if i == 0 else _width(block_expansion, i, max_features),
                _width(block_expansion, i + 1, max_features), resample='down'))
        self.predictor.conv = nn.Conv2d(deepest, reshape_channel, 1)
        self.predictor.up_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.predictor.up_blocks.add_module(f'up{i}', ConvNormAct(
                _width(block_expansion, num_blocks - i, max_features),
                _width(block_expansion, num_blocks - i - 1, max_features), dims=3,
                resample='up'))
        self.kp = nn.Conv3d(block_expansion, num_kp, 3, padding=1)
        self.reshape_depth, self.temperature = reshape_depth, temperature
        if scale_factor != 1:
            self.down = AntiAliasDownsample(image_channel, scale_factor)

    def forward(self, x: Tensor) -> dict:
        if hasattr(self, 'down'):
            x = self.down(x)
        features = self.predictor.conv(self.predictor.down_blocks(x))
        b, c, h, w = features.shape
        volume = self.predictor.up_blocks(
            features.view(b, c // self.reshape_depth, self.reshape_depth, h, w))
        logits = self.kp(volume)
        b, k, d, h, w = logits.shape
        heat = (logits.flatten(2) / self.temperature).softmax(-1).view(b, k, d, h, w)
        grid = coordinate_grid_3d(d, h, w, x)
        return {'value': (heat[..., None] * grid).sum((2, 3, 4))}


class HeadPoseExpressionEstimator(nn.Module):
    """Frames (B, 3, H, W) in [0, 1] -> ``{'yaw', 'pitch', 'roll': (B, num_bins) logits over
    3-degree bins from -99 degrees, 't': (B, 3), 'exp': (B, 3 K)}``: a ResNet-style trunk of
    bottlenecks (256 / 512 / 1024 / 2048 wide), global average pooling and five heads.

    The checkpoint's yaw head is the layer named ``fc_roll`` and its roll head ``fc_yaw``; the
    outputs here are named by what the checkpoint's own keypoint transform uses them for."""

    def __init__(self, num_kp: int = 15, image_channel: int = 3, block_expansion: int = 64,
                 num_bins: int = 66):
        super().__init__()
        self.conv1 = nn.Conv2d(image_channel, block_expansion, 7, stride=2, padding=3)
        self.norm1 = nn.BatchNorm2d(block_expansion)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths, depths = (256, 512, 1024, 2048), (3, 3, 5, 2)
        cin = block_expansion
        for stage, (width, depth) in enumerate(zip(widths, depths)):
            setattr(self, f'conv{stage + 2}', nn.Conv2d(cin, width, 1))
            setattr(self, f'norm{stage + 2}', nn.BatchNorm2d(width))
            # stage 0: block1 (3 blocks); stage s > 0: block{2s} (strided) + block{2s+1}
            if stage == 0:
                self.block1 = self._stack('b1', width, depth)
            else:
                setattr(self, f'block{2 * stage}', ResBottleneck(width, stride=2))
                setattr(self, f'block{2 * stage + 1}',
                        self._stack(f'b{2 * stage + 1}', width, depth))
            cin = width
        self.fc_roll = nn.Linear(2048, num_bins)
        self.fc_pitch = nn.Linear(2048, num_bins)
        self.fc_yaw = nn.Linear(2048, num_bins)
        self.fc_t = nn.Linear(2048, 3)
        self.fc_exp = nn.Linear(2048, 3 * num_kp)

    @staticmethod
    def _stack(prefix: str, width: int, depth: int) -> nn.Sequential:
        stack = nn.Sequential()
        for i in range(depth):
            stack.add_module(f'{prefix}_{i}', ResBottleneck(width))
        return stack

    def forward(self, x: Tensor) -> dict:
        x = self.maxpool(F.relu(self.norm1(self.conv1(x))))
        x = self.block1(F.relu(self.norm2(self.conv2(x))))
        for stage in (1, 2, 3):
            x = F.relu(getattr(self, f'norm{stage + 2}')(getattr(self, f'conv{stage + 2}')(x)))
            x = getattr(self, f'block{2 * stage + 1}')(getattr(self, f'block{2 * stage}')(x))
        x = x.mean((2, 3))
        return {'yaw': self.fc_roll(x), 'pitch': self.fc_pitch(x), 'roll': self.fc_yaw(x),
                't': self.fc_t(x), 'exp': self.fc_exp(x)}


def bins_to_degrees(logits: Tensor) -> Tensor:
    """(B, bins) -> (B,) expected angle: sum softmax_i * 3 i - 99 degrees."""
    index = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (logits.softmax(1) * index).sum(1) * 3 - 99


def rotation_matrix(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """Angles (B,) in degrees -> (B, 3, 3) ``R = R_x(pitch) R_y(yaw) R_z(roll)``."""
    yaw, pitch, roll = (a / 180 * _PI_OF_THE_CHECKPOINT for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)

    def matrix(*rows):
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    rx = matrix((one, zero, zero), (zero, pitch.cos(), -pitch.sin()),
                (zero, pitch.sin(), pitch.cos()))
    ry = matrix((yaw.cos(), zero, yaw.sin()), (zero, one, zero),
                (-yaw.sin(), zero, yaw.cos()))
    rz = matrix((roll.cos(), -roll.sin(), zero), (roll.sin(), roll.cos(), zero),
                (zero, zero, one))
    return rx @ ry @ rz


def transform_keypoints(canonical: Tensor, head: dict) -> Tensor:
    """Canonical keypoints (B, K, 3) and a frame's :class:`HeadPoseExpressionEstimator` output
    -> the frame's keypoints ``R c + t + delta`` (B, K, 3)."""
    rot = rotation_matrix(*(bins_to_degrees(head[k]) for k in ('yaw', 'pitch', 'roll')))
    b, k, _ = canonical.shape
    return canonical @ rot.transpose(1, 2) + head['t'][:, None] + head['exp'].view(b, k, 3)


class DenseMotion3d(nn.Module):
    """The 3-D backward flow (B, D, h, w, 3) and an occlusion map (B, 1, h, w) from the source
    feature volume and the two keypoint sets: the volume compressed to ``compress`` channels
    and warped by each keypoint's translation (plus the identity), with the keypoints' Gaussian
    difference, through a 3-D hourglass that predicts soft masks over the K + 1 motions."""

    def __init__(self, num_kp: int = 15, feature_channel: int = 32, block_expansion: int = 32,
                 num_blocks: int = 5, max_features: int = 1024, reshape_depth: int = 16,
                 compress: int = 4, estimate_occlusion_map: bool = True,
                 kp_variance: float = 0.01):
        super().__init__()
        self.hourglass = Hourglass3d(block_expansion, (num_kp + 1) * (compress + 1), num_blocks,
                                     max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, 7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, 1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, 7, padding=3) \
            if estimate_occlusion_map else None
        self.num_kp, self.kp_variance = num_kp, kp_variance

    def forward(self, feature: Tensor, kp_driving: Tensor, kp_source: Tensor) -> dict:
        feature = F.relu(self.norm(self.compress(feature)))
        b, c, d, h, w = feature.shape
        grid = coordinate_grid_3d(d, h, w, feature)
        shift = (kp_source - kp_driving)[:, :, None, None, None]             # (B, K, 1, 1, 1, 3)
        motions = torch.cat([grid[None, None].expand(b, 1, d, h, w, 3), grid + shift], 1)
        warped = F.grid_sample(feature.repeat_interleave(self.num_kp + 1, 0),
                               motions.flatten(0, 1), align_corners=False)
        warped = warped.view(b, self.num_kp + 1, c, d, h, w)
        heat = gaussian_volumes(kp_driving, d, h, w, self.kp_variance) - \
            gaussian_volumes(kp_source, d, h, w, self.kp_variance)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], 1)[:, :, None]
        features = self.hourglass(torch.cat([heat, warped], 2).flatten(1, 2))
        mask = self.mask(features).softmax(1)
        out = {'deformation': (mask[..., None] * motions).sum(1)}
        if self.occlusion is not None:
            out['occlusion_map'] = torch.sigmoid(self.occlusion(features.flatten(1, 2)))
        return out


class SPADE(nn.Module):
    """Parameter-free instance norm, then ``(1 + gamma(seg)) x + beta(seg)`` with gamma and beta
    convolved from the segmentation-like map ``seg`` resized (nearest) to x."""

    def __init__(self, channels: int, label_channels: int, hidden: int = 128):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(channels, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1),
                                        nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        hidden = self.mlp_shared(F.interpolate(seg, size=x.shape[2:], mode='nearest'))
        return self.param_free_norm(x) * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SPADEResBlock(nn.Module):
    """Residual block of SPADE-normalised, spectrally normalised 3x3 convs (leaky ReLU 0.2); a
    SPADE + 1x1 shortcut (no bias) when the width changes."""

    def __init__(self, cin: int, cout: int, label_channels: int, hidden: int = 128):
        super().__init__()
        mid = min(cin, cout)
        self.conv_0 = spectral_norm(nn.Conv2d(cin, mid, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(mid, cout, 3, padding=1))
        self.norm_0 = SPADE(cin, label_channels, hidden)
        self.norm_1 = SPADE(mid, label_channels, hidden)
        self.learned_shortcut = cin != cout
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(cin, cout, 1, bias=False))
            self.norm_s = SPADE(cin, label_channels, hidden)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    """(B, C, h, w) warped feature, also the SPADE map -> (B, 3, 4h, 4w) in [0, 1]: ``fc``
    (C -> 2C), six ``G_middle`` blocks, x2 -> ``up_0`` (2C -> C), x2 -> ``up_1`` (C -> out)."""

    def __init__(self, channels: int = 256, out_channels: int = 64, image_channel: int = 3,
                 num_middle: int = 6, hidden: int = 128):
        super().__init__()
        self.fc = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        for i in range(num_middle):
            setattr(self, f'G_middle_{i}',
                    SPADEResBlock(2 * channels, 2 * channels, channels, hidden))
        self.up_0 = SPADEResBlock(2 * channels, channels, channels, hidden)
        self.up_1 = SPADEResBlock(channels, out_channels, channels, hidden)
        self.conv_img = nn.Conv2d(out_channels, image_channel, 3, padding=1)
        self.num_middle = num_middle

    def forward(self, seg: Tensor) -> Tensor:
        x = self.fc(seg)
        for i in range(self.num_middle):
            x = getattr(self, f'G_middle_{i}')(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class OcclusionAwareSPADEGenerator(nn.Module):
    """Source (B, 3, H, W) in [0, 1] and keypoints (B, K, 3) -> the driving frame (B, 3, H, W).

    2-D encoder (``first``, ``down_blocks``, ``second``) lifted to a (reshape_channel,
    reshape_depth, H/4, W/4) volume, ``resblocks_3d``, warped by :class:`DenseMotion3d`, back to
    2-D (``third``, ``fourth``), times the occlusion map, :class:`SPADEDecoder`."""

    def __init__(self, num_kp: int = 15, image_channel: int = 3, block_expansion: int = 64,
                 max_features: int = 512, num_down_blocks: int = 2, reshape_channel: int = 32,
                 reshape_depth: int = 16, num_resblocks: int = 6,
                 estimate_occlusion_map: bool = True, dense_motion_params: dict | None = None,
                 spade_hidden: int = 128):
        super().__init__()
        if reshape_channel * reshape_depth != max_features:
            raise ValueError(f'reshape_channel x reshape_depth ({reshape_channel} x '
                             f'{reshape_depth}) must equal max_features ({max_features})')
        self.dense_motion_network = DenseMotion3d(
            num_kp, reshape_channel, estimate_occlusion_map=estimate_occlusion_map,
            **dict(dict(reshape_depth=reshape_depth), **(dense_motion_params or {})))
        self.first = ConvNormAct(image_channel, block_expansion)
        self.down_blocks = nn.ModuleList(
            ConvNormAct(_width(block_expansion, i, max_features),
                        _width(block_expansion, i + 1, max_features), resample='down')
            for i in range(num_down_blocks))
        encoded = _width(block_expansion, num_down_blocks, max_features)
        self.second = nn.Conv2d(encoded, max_features, 1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f'3dr{i}', PreActResBlock(reshape_channel, dims=3))
        decoded = block_expansion * 2 ** num_down_blocks
        self.third = ConvNormAct(max_features, decoded, leaky=True)
        self.fourth = nn.Conv2d(decoded, decoded, 1)
        self.decoder = SPADEDecoder(decoded, block_expansion, image_channel, hidden=spade_hidden)
        self.reshape_channel, self.reshape_depth = reshape_channel, reshape_depth

    def forward(self, source: Tensor, kp_driving: Tensor, kp_source: Tensor) -> Tensor:
        x = self.first(source)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        b, c, h, w = x.shape
        volume = self.resblocks_3d(x.view(b, self.reshape_channel, self.reshape_depth, h, w))
        motion = self.dense_motion_network(volume, kp_driving, kp_source)
        warped = F.grid_sample(volume, motion['deformation'], align_corners=False)
        x = self.fourth(self.third(warped.view(b, c, h, w)))
        if 'occlusion_map' in motion:
            occlusion = motion['occlusion_map']
            if occlusion.shape[2:] != x.shape[2:]:
                occlusion = F.interpolate(occlusion, size=x.shape[2:], mode='bilinear',
                                          align_corners=False)
            x = x * occlusion
        return self.decoder(x)


@MODELS.register_module()
class FaceVid2VidAnimator(BaseModel):
    """face-vid2vid as a frozen coarse animator: ``forward(source, driving, mode='tensor')``
    with frames (B, 3, H, W) in [-1, 1] -> the animated frames, same range.

    The canonical keypoints come from the source; the source keypoints from the source's head
    pose and expression, the driving keypoints from the driving frame's (absolute motion, the
    same-identity reconstruction FADM trains and tests on). Load the re-implementation's
    weights with ``checkpoint`` (converted by :func:`facevid2vid_to_mmext`).

    Args:
        kp_detector, he_estimator, generator: keyword arguments of
            :class:`CanonicalKeypointDetector`, :class:`HeadPoseExpressionEstimator` and
            :class:`OcclusionAwareSPADEGenerator` (defaults: ``vox-256-spade``).
        checkpoint: ``00000189-checkpoint.pth.tar`` or any file with ``kp_detector``,
            ``he_estimator`` and ``generator`` state dicts; read when the model is built.
    """

    def __init__(self, kp_detector: dict | None = None, he_estimator: dict | None = None,
                 generator: dict | None = None, checkpoint: str | None = None,
                 data_preprocessor: dict | None = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.kp_detector = CanonicalKeypointDetector(**(kp_detector or {}))
        self.he_estimator = HeadPoseExpressionEstimator(**(he_estimator or {}))
        self.generator = OcclusionAwareSPADEGenerator(**(generator or {}))
        if checkpoint:
            from .convert import load_facevid2vid
            self.load_state_dict(load_facevid2vid(checkpoint, self))
        self.eval()

    def keypoints(self, source: Tensor, driving: Tensor) -> tuple[Tensor, Tensor]:
        """Frames in [0, 1] -> (source keypoints, driving keypoints), each (B, K, 3)."""
        canonical = self.kp_detector(source)['value']
        return (transform_keypoints(canonical, self.he_estimator(source)),
                transform_keypoints(canonical, self.he_estimator(driving)))

    def forward(self, source: Tensor, driving: Tensor, mode: str = 'tensor', **_):
        if mode != 'tensor':
            raise ValueError('FaceVid2VidAnimator is a frozen animator: only mode="tensor"')
        s, d = (source + 1) / 2, (driving + 1) / 2
        kp_source, kp_driving = self.keypoints(s, d)
        return self.generator(s, kp_driving, kp_source) * 2 - 1


__all__ = ['FaceVid2VidAnimator', 'CanonicalKeypointDetector', 'HeadPoseExpressionEstimator',
           'OcclusionAwareSPADEGenerator', 'DenseMotion3d', 'bins_to_degrees',
           'rotation_matrix', 'transform_keypoints']
