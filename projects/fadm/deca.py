"""DECA's expression and pose for FADM (spec 11.1: ``a = [exp, pose]_s - [exp, pose]_target``,
56-d), from the coarse encoder ``E_flame`` of DECA's released ``deca_model.tar``.

Only the encoder runs: FLAME and its assets (under FLAME's own licence) are needed to turn the
coefficients into a mesh, not to compute them. The encoder is a ResNet-50 (torchvision's layout,
without ``fc``) and ``layers`` = Linear(2048, 1024) -> ReLU -> Linear(1024, 236); the 236
coefficients are, in order, shape 100, texture 50, expression 50, pose 6 (global rotation and
jaw rotation, axis-angle), camera 3, light 27. The input is a 224 x 224 RGB crop in [0, 1], no
normalisation.

The crop: DECA squares the bounding box of 68 face landmarks (FAN), side 1.1 x 1.25 x the mean
of its width and height, centred on the box. FAN's weights are not available here, so
:func:`deca_crop_box` takes MediaPipe's face mesh and bounds the points that match the 68-point
layout's extent (the jaw at the ears' level, the chin, the brows) or any 68 landmarks a user
has (``landmarks68``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mmext.registry import MODELS, TASK_UTILS

DECA_CODE = (('shape', 100), ('tex', 50), ('exp', 50), ('pose', 6), ('cam', 3), ('light', 27))
DECA_INPUT_SIZE = 224
# MediaPipe face-mesh points that bound the 68-point layout: jaw at the tragus (234, 454),
# chin (152), brow tops (70, 63, 105, 66, 107; 336, 296, 334, 293, 300)
MESH_POINTS_FOR_68_BOX = (234, 454, 152, 70, 63, 105, 66, 107, 336, 296, 334, 293, 300)


def split_code(code: Tensor) -> dict:
    """(B, 236) -> the named parts of :data:`DECA_CODE`; light reshaped to (B, 9, 3)."""
    if code.shape[-1] != sum(n for _, n in DECA_CODE):
        raise ValueError(f'a DECA code has 236 values, got {code.shape[-1]}')
    parts, start = {}, 0
    for name, n in DECA_CODE:
        parts[name] = code[:, start:start + n]
        start += n
    parts['light'] = parts['light'].reshape(-1, 9, 3)
    return parts


@MODELS.register_module()
class DECACoarseEncoder(nn.Module):
    """DECA's ``E_flame``: (B, 3, 224, 224) RGB in [0, 1] -> (B, 236) code.

    Args:
        checkpoint: DECA's ``deca_model.tar`` (its ``E_flame`` entry is read), or None.
    """

    def __init__(self, checkpoint: str | None = None):
        super().__init__()
        from torchvision.models import resnet50
        self.encoder = resnet50(weights=None)
        self.encoder.fc = nn.Identity()            # DECA's ResNet has none
        self.layers = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, 236))
        if checkpoint:
            self.load_state_dict(load_deca_encoder(checkpoint, self))
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[1:] != (3, DECA_INPUT_SIZE, DECA_INPUT_SIZE):
            raise ValueError(f'DECA takes (B, 3, 224, 224) crops, got {tuple(images.shape)}: '
                             'crop with deca_crop (projects/fadm/deca.py)')
        return self.layers(self.encoder(images))


def load_deca_encoder(path: str | Path, model: nn.Module) -> dict:
    """``deca_model.tar`` -> the state dict of a :class:`DECACoarseEncoder` (strict: every key
    and shape must match; DECA's own loader skips mismatches silently)."""
    from .convert import fit_state_dict, read_checkpoint
    checkpoint = read_checkpoint(path, 'DECA', "DECA's data/deca_model.tar", 'attributes')
    if not isinstance(checkpoint, dict) or 'E_flame' not in checkpoint:
        keys = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint)
        raise ValueError(f'{path} is not a DECA checkpoint: no E_flame (its keys: {keys})')
    state = {k.removeprefix('module.'): v for k, v in checkpoint['E_flame'].items()}
    return fit_state_dict(state, model, 'DECA E_flame',
                          "DECA's coarse encoder is a ResNet-50 and a 2048-1024-236 head")


def deca_crop_box(points: np.ndarray, scale: float = 1.25) -> tuple[float, float, float]:
    """Landmarks (N, >= 2) in pixels -> the square crop (centre x, centre y, side): DECA's
    ``old_size = 1.1 x mean(box width, box height)``, ``side = int(old_size x scale)``, centred
    on the box."""
    left, top = points[:, 0].min(), points[:, 1].min()
    right, bottom = points[:, 0].max(), points[:, 1].max()
    old_size = ((right - left) + (bottom - top)) / 2 * 1.1
    return (left + right) / 2, (top + bottom) / 2, float(int(old_size * scale))


def deca_crop(image: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
    """(H, W, 3) uint8 RGB and a square (centre x, centre y, side) -> (224, 224, 3) float in
    [0, 1] (bilinear, black outside the image), as DECA warps its test images."""
    from skimage.transform import SimilarityTransform, warp
    cx, cy, side = box
    src = np.array([[cx - side / 2, cy - side / 2], [cx - side / 2, cy + side / 2],
                    [cx + side / 2, cy - side / 2]])
    last = DECA_INPUT_SIZE - 1
    dst = np.array([[0, 0], [0, last], [last, 0]], dtype=float)
    tform = SimilarityTransform.from_estimate(src, dst)
    if not tform:
        raise ValueError(f'the crop box {box} is degenerate (side 0?)')
    return warp(image / 255.0, tform.inverse, output_shape=(DECA_INPUT_SIZE, DECA_INPUT_SIZE),
                order=1, mode='constant', cval=0)


@TASK_UTILS.register_module()
class DECAFaceAttributes:
    """DECA's expression (50) and pose (6) of the most prominent face of an RGB image.

    ``__call__(image, landmarks68=None)``: (H, W, 3) uint8 RGB -> ``{'expression': (50,),
    'pose': (6,), 'code': (236,), 'crop': (224, 224, 3)}``; :meth:`vector` gives
    ``[expression, pose]`` (56,), the attribute vector of spec 11.1. Without ``landmarks68`` the
    crop comes from MediaPipe's face mesh (raises :class:`NoFaceFoundError` when it finds none).
    """

    num_attributes = 56

    def __init__(self, checkpoint: str, min_detection_confidence: float = 0.5):
        self.encoder = DECACoarseEncoder(checkpoint)
        self.min_detection_confidence = min_detection_confidence
        self._mesh = None

    def crop(self, image: np.ndarray, landmarks68: np.ndarray | None = None) -> np.ndarray:
        if landmarks68 is None:
            if self._mesh is None:
                from .attributes import MediaPipeFaceAttributes
                self._mesh = MediaPipeFaceAttributes(self.min_detection_confidence)
            points = self._mesh.landmarks(image)[list(MESH_POINTS_FOR_68_BOX)]
        else:
            points = np.asarray(landmarks68, dtype=float)
            if points.shape != (68, 2):
                raise ValueError(f'landmarks68 must be (68, 2) pixels, got {points.shape}')
        return deca_crop(image, deca_crop_box(points))

    @torch.no_grad()
    def __call__(self, image: np.ndarray, landmarks68: np.ndarray | None = None) -> dict:
        crop = self.crop(image, landmarks68)
        code = self.encoder(torch.from_numpy(crop).permute(2, 0, 1)[None].float())
        parts = split_code(code)
        return dict(expression=parts['exp'][0].numpy(), pose=parts['pose'][0].numpy(),
                    code=code[0].numpy(), crop=crop)

    def vector(self, image: np.ndarray, landmarks68: np.ndarray | None = None) -> np.ndarray:
        found = self(image, landmarks68)
        return np.concatenate([found['expression'], found['pose']]).astype(np.float32)

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
