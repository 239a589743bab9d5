"""CSIM: identity similarity of animated faces with ArcFace (insightface's ``arcface_torch``
``iresnet`` backbones, e.g. ``ms1mv3_arcface_r100_fp16/backbone.pth``, a plain state dict).

``csim_arcface`` = the mean cosine similarity between the ArcFace embedding of the generated
frame and of the source frame (whose identity the animation must keep); higher is better, 1 for
the same image. Faces are aligned to ArcFace's 112 x 112 five-point template by a similarity
transform, with the five points (eye centres, nose tip, mouth corners) from MediaPipe's face
mesh, the named landmark detector of :mod:`projects.fadm.metrics`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor, nn

from mmext.registry import METRICS, MODELS

from .attributes import MediaPipeFaceAttributes, NoFaceFoundError
from .metrics import to_uint8_rgb

# ArcFace's alignment template at 112 x 112 (image left eye, image right eye, nose tip, image
# left and right mouth corners), the insightface convention
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]])
# MediaPipe face-mesh indices: the eye on the image's left is the subject's right eye
_EYE_IMAGE_LEFT = (33, 133, 159, 145)
_EYE_IMAGE_RIGHT = (263, 362, 386, 374)
_NOSE_TIP, _MOUTH_IMAGE_LEFT, _MOUTH_IMAGE_RIGHT = 1, 61, 291
IRESNET_LAYERS = {'r18': (2, 2, 2, 2), 'r34': (3, 4, 6, 3), 'r50': (3, 4, 14, 3),
                  'r100': (3, 13, 30, 3)}


class IBasicBlock(nn.Module):
    """``bn1 -> conv1 (3x3) -> bn2 -> prelu -> conv2 (3x3, stride) -> bn3`` plus the (projected)
    input; no activation after the sum."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout, eps=1e-5))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


@MODELS.register_module()
class ArcFaceIResNet(nn.Module):
    """ArcFace's improved ResNet: (B, 3, 112, 112) RGB normalised ``(x / 255 - 0.5) / 0.5`` ->
    (B, 512) embeddings (not L2-normalised).

    Args:
        depth: 'r18', 'r34', 'r50' or 'r100' (blocks per stage of insightface's iresnet).
        checkpoint: insightface's ``backbone.pth`` of that depth, or None.
    """

    def __init__(self, depth: str = 'r100', checkpoint: str | None = None,
                 embedding_dim: int = 512):
        super().__init__()
        if depth not in IRESNET_LAYERS:
            raise ValueError(f'unknown ArcFace depth {depth!r}; use one of {list(IRESNET_LAYERS)}')
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), IRESNET_LAYERS[depth])):
            setattr(self, f'layer{stage + 1}', nn.Sequential(*(
                IBasicBlock(cin if i == 0 else width, width, 2 if i == 0 else 1)
                for i in range(blocks))))
            cin = width
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=1e-5)
        self.depth = depth
        if checkpoint:
            self.load_state_dict(load_arcface(checkpoint, self))
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1:] != (3, 112, 112):
            raise ValueError(f'ArcFace takes aligned (B, 3, 112, 112) faces, got '
                             f'{tuple(x.shape)}: align with align_arcface')
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.bn2(x).flatten(1)))


def load_arcface(path: str | Path, model: ArcFaceIResNet) -> dict:
    """insightface's ``backbone.pth`` (a plain state dict, possibly fp16) -> float32, checked
    against ``model``."""
    from .convert import fit_state_dict, read_checkpoint
    state = read_checkpoint(path, 'ArcFace', "insightface's arcface_torch backbone.pth "
                            f'({model.depth})', 'metrics')
    if isinstance(state, dict):
        state = {k.removeprefix('module.'): v for k, v in state.items()}   # DataParallel
    if not isinstance(state, dict) or 'fc.weight' not in state:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state)
        raise ValueError(f'{path} is not an ArcFace iresnet state dict: no fc.weight (its keys: '
                         f'{keys})')
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return fit_state_dict(state, model, f'ArcFace {model.depth}',
                          'another depth? r18 / r34 / r50 / r100')


def five_points(mesh: np.ndarray) -> np.ndarray:
    """(468, >= 2) MediaPipe landmarks in pixels -> (5, 2) in :data:`ARCFACE_TEMPLATE`'s order."""
    return np.stack([mesh[list(_EYE_IMAGE_LEFT), :2].mean(0),
                     mesh[list(_EYE_IMAGE_RIGHT), :2].mean(0), mesh[_NOSE_TIP, :2],
                     mesh[_MOUTH_IMAGE_LEFT, :2], mesh[_MOUTH_IMAGE_RIGHT, :2]])


def align_arcface(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB and its five points -> (112, 112, 3) uint8 aligned face (similarity
    fitted to the template by least squares, bilinear, black outside)."""
    from skimage.transform import SimilarityTransform, warp
    tform = SimilarityTransform.from_estimate(np.asarray(points, float), ARCFACE_TEMPLATE)
    if not tform:
        raise ValueError('the five face points are degenerate: no similarity fits them')
    out = warp(image, tform.inverse, output_shape=(112, 112), order=1, mode='constant', cval=0)
    return (out * 255).round().astype(np.uint8)


def arcface_input(faces: Sequence[np.ndarray]) -> Tensor:
    """Aligned (112, 112, 3) uint8 faces -> (B, 3, 112, 112) in [-1, 1]."""
    x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float()
    return (x / 255 - 0.5) / 0.5


@METRICS.register_module()
class IdentitySimilarityMetric(BaseMetric):
    """CSIM (module docstring) of ``pred`` (first sample) and ``coarse`` against ``source``.

    Frames whose source or generated face MediaPipe cannot find are left out of the mean and
    counted (``csim_frames_without_face``); the coarse figures (``coarse_csim_arcface``) come
    beside the refined ones.

    Args:
        arcface: insightface's ``backbone.pth``; ``depth`` its iresnet depth.
    """

    default_prefix = 'anim'

    def __init__(self, arcface: str, depth: str = 'r100', min_detection_confidence: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self.network = ArcFaceIResNet(depth, checkpoint=arcface)
        self.mesh = MediaPipeFaceAttributes(min_detection_confidence)

    def aligned(self, frame: Tensor) -> np.ndarray | None:
        image = to_uint8_rgb(frame)
        try:
            return align_arcface(image, five_points(self.mesh.landmarks(image)))
        except NoFaceFoundError:
            return None

    @torch.no_grad()
    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        emb = nn.functional.normalize(self.network(arcface_input([a, b])), dim=1)
        return float(emb[0] @ emb[1])

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for out in data_samples:
            source = self.aligned(out['source'])
            row = {}
            for kind, frame in (('pred', out['pred'][0]), ('coarse', out.get('coarse'))):
                if frame is None:
                    continue
                face = self.aligned(frame)
                row[kind] = (self.similarity(source, face)
                             if source is not None and face is not None else None)
            self.results.append(row)

    def compute_metrics(self, results: list) -> dict:
        out = {'csim_frames_without_face': sum(r['pred'] is None for r in results)}
        for kind, name in (('pred', 'csim_arcface'), ('coarse', 'coarse_csim_arcface')):
            values = [r[kind] for r in results if r.get(kind) is not None]
            if values:
                out[name] = float(np.mean(values))
        if 'csim_arcface' not in out:
            raise ValueError('CSIM: no frame where MediaPipe finds both the source and the '
                             'generated face')
        return out
