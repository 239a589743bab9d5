"""A VGG16 perceptual loss on torchvision's VGG16 read from a local checkpoint (CMVDM's
silhouette network, spec 10.4; any image loss)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmext.registry import MODELS

# the index of the ReLU that ends each of VGG16's five conv blocks in ``vgg16().features``
BLOCK_ENDS = (3, 8, 15, 22, 29)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@MODELS.register_module()
class VGGPerceptualLoss(nn.Module):
    """``sum_i w_i mean |phi_i(x) - phi_i(y)|`` over the outputs phi_i of VGG16's conv blocks
    1..len(weights) (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3), frozen.

    Args:
        checkpoint: torchvision's VGG16 weights (``vgg16-397923af.pth`` or any state dict with
            its ``features.*`` keys); only the layers up to the deepest block used are read.
        weights: per block (spec 10.4: 10, 10, 10, 10, 2).
        loss_weight: a factor on the sum.

    ``forward(pred, target)``: (B, 1 or 3, H, W) in [0, 1] (grey is repeated to RGB), ImageNet
    normalisation inside.
    """

    def __init__(self, checkpoint: str, weights: Sequence[float] = (10, 10, 10, 10, 2),
                 loss_weight: float = 1.0):
        super().__init__()
        if not 1 <= len(weights) <= len(BLOCK_ENDS):
            raise ValueError(f'weights: one per VGG16 block, 1 to 5 of them, got {weights}')
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG16 weights not found at {path}: copy torchvision's vgg16-397923af.pth "
                "there (torchvision.models.vgg16(weights='IMAGENET1K_V1') downloads it on a "
                'machine with access), or leave the perceptual term out of the config')
        from torchvision.models import vgg16
        last = BLOCK_ENDS[len(weights) - 1]
        self.features = vgg16(weights=None).features[:last + 1]
        state = torch.load(path, map_location='cpu', weights_only=True)
        state = state.get('state_dict', state)
        wanted = {k.removeprefix('features.'): v for k, v in state.items()
                  if k.startswith('features.') and int(k.split('.')[1]) <= last}
        missing = set(self.features.state_dict()) - set(wanted)
        if missing:
            raise ValueError(f'{path} is not a torchvision VGG16 checkpoint: no '
                             f'{sorted("features." + m for m in missing)[:4]}...')
        self.features.load_state_dict(wanted)
        self.features.requires_grad_(False).eval()
        self.weights, self.loss_weight = tuple(float(w) for w in weights), loss_weight
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.eval()
        return self

    def block_features(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in BLOCK_ENDS:
                out.append(x)
        return out

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            goal = self.block_features(target)
        feats = self.block_features(pred)
        return self.loss_weight * sum(w * F.l1_loss(f, g)
                                      for w, f, g in zip(self.weights, feats, goal))
