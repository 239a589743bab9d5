"""CMVDM's semantic and layout parts (spec 10.3-10.5): the CLIP alignment head and loss, the
silhouette decoder and encoder, and the residual hint network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmext.registry import MODELS


@MODELS.register_module()
class CLIPAlignHead(nn.Module):
    """Context (B, T, C) -> a CLIP image embedding (B, clip_dim): Conv1d over the token axis
    T -> 64 -> 4, flatten (4 C), an MLP of ``num_layers`` Linear layers (SiLU between, hidden
    ``hidden``)."""

    def __init__(self, context_tokens: int, context_dim: int, clip_dim: int,
                 hidden: int = 1024, num_layers: int = 5, mid_tokens: int = 64,
                 out_tokens: int = 4):
        super().__init__()
        self.tokens = nn.Sequential(nn.Conv1d(context_tokens, mid_tokens, 1),
                                    nn.Conv1d(mid_tokens, out_tokens, 1))
        dims = [out_tokens * context_dim] + [hidden] * (num_layers - 1) + [clip_dim]
        layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.SiLU())
        self.mlp = nn.Sequential(*layers)

    def forward(self, context: Tensor) -> Tensor:
        return self.mlp(self.tokens(context).flatten(1))


@MODELS.register_module()
class CLIPAlignLoss(nn.Module):
    """``weight * exp(-mean_b cos(e_b, CLIP(x_b)))`` (spec 10.3; weight 0.004)."""

    def __init__(self, loss_weight: float = 0.004):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, predicted: Tensor, target: Tensor) -> Tensor:
        cos = F.cosine_similarity(predicted, target.detach(), dim=-1).mean()
        return self.loss_weight * torch.exp(-cos)


def _up_block(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode='bicubic', align_corners=False),
                         nn.Conv2d(cin, cout, 5, padding=2), nn.GroupNorm(groups, cout),
                         nn.SiLU())


@MODELS.register_module()
class SilhouetteDecoder(BaseModule):
    """Voxels (B, V) -> a coarse image (B, out_channels, out_size, out_size) in [0, 1]
    (spec 10.4: Linear -> 64 x 14 x 14, three bicubic x2 + 5x5 conv + GroupNorm + SiLU blocks,
    5x5 conv, sigmoid: 112 px, resized to ``out_size``). ``init_cfg``: e.g. ``dict(type=
    'Pretrained', checkpoint=..., prefix='decoder.')`` for a ``SilhouetteTrainer`` run."""

    def __init__(self, num_voxels: int, out_channels: int = 3, channels: int = 64,
                 start_size: int = 14, num_up: int = 3, out_size: int = 512, groups: int = 32,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.channels, self.start_size, self.out_size = channels, start_size, out_size
        self.fc = nn.Linear(num_voxels, channels * start_size ** 2)
        self.up = nn.Sequential(*[_up_block(channels, channels, groups) for _ in range(num_up)])
        self.out = nn.Conv2d(channels, out_channels, 5, padding=2)

    def forward(self, voxels: Tensor) -> Tensor:
        x = self.fc(voxels).view(-1, self.channels, self.start_size, self.start_size)
        x = torch.sigmoid(self.out(self.up(x)))
        if x.shape[-1] != self.out_size:
            x = F.interpolate(x, size=self.out_size, mode='bilinear', align_corners=False)
        return x


@MODELS.register_module()
class SilhouetteEncoder(nn.Module):
    """An image (B, C, H, W) in [0, 1] -> voxels (B, V): strided convolutions, global average
    pooling to ``pool_size`` x ``pool_size``, Linear (spec 10.4's E_s)."""

    def __init__(self, num_voxels: int, in_channels: int = 3, channels: int = 64,
                 num_down: int = 3, pool_size: int = 4, groups: int = 32):
        super().__init__()
        layers, cin = [], in_channels
        for _ in range(num_down):
            layers += [nn.Conv2d(cin, channels, 5, stride=2, padding=2),
                       nn.GroupNorm(groups, channels), nn.SiLU()]
            cin = channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool_size))
        self.fc = nn.Linear(channels * pool_size ** 2, num_voxels)

    def forward(self, image: Tensor) -> Tensor:
        return self.fc(self.features(image).flatten(1))


@MODELS.register_module()
class ResidualHintNet(nn.Module):
    """Voxels (B, V) -> a residual hint (B, out_channels, out_size, out_size) (spec 10.5):
    MLP (``hidden`` x 3, SiLU) -> 1 x start x start, then per entry of ``channels`` an upsample
    to the next size of ``sizes`` and a 3x3 conv, a 7x7 conv to ``out_channels`` and a
    zero-initialised 7x7 conv, so that the hint starts at zero."""

    def __init__(self, num_voxels: int, out_channels: int = 3, hidden: int = 1024,
                 start_size: int = 32, sizes: tuple[int, ...] = (64, 256, 512),
                 channels: tuple[int, ...] = (32, 64, 64)):
        super().__init__()
        if len(sizes) != len(channels):
            raise ValueError(f'sizes {sizes} and channels {channels} must have one entry per '
                             'upsampling step')
        self.start_size = start_size
        self.mlp = nn.Sequential(nn.Linear(num_voxels, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, start_size ** 2))
        layers, cin = [], 1
        for size, cout in zip(sizes, channels):
            layers += [nn.Upsample(size=size, mode='bilinear', align_corners=False),
                       nn.Conv2d(cin, cout, 3, padding=1), nn.SiLU()]
            cin = cout
        self.body = nn.Sequential(*layers, nn.Conv2d(cin, out_channels, 7, padding=3))
        self.zero_out = nn.Conv2d(out_channels, out_channels, 7, padding=3)
        nn.init.zeros_(self.zero_out.weight)
        nn.init.zeros_(self.zero_out.bias)

    def forward(self, voxels: Tensor) -> Tensor:
        x = self.mlp(voxels).view(-1, 1, self.start_size, self.start_size)
        return self.zero_out(self.body(x))
