"""Fréchet distance between the feature distributions of generated and real images (spec 1.7):
FID on the 2048-d pool features of the TF Inception network through clean-fid (its 'clean'
resizing) when the user has its file, otherwise a distance on named features that says so in
its key. Never the 64-d feature FID."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from torch import Tensor

from mmext.registry import METRICS

from .image_quality import Judge

INCEPTION_FILE = 'inception-2015-12-05.pt'


class CleanFIDInception:
    """clean-fid's TorchScript Inception-V3 (``inception-2015-12-05.pt``, the FID network of
    TensorFlow ported by StyleGAN2-ADA) read from a local folder, with clean-fid's 'clean'
    preprocessing: images quantised to uint8 as if saved, bicubic resize to 299 x 299 in float
    (PIL), values in [0, 255]. Grey images are repeated to RGB."""

    def __init__(self, folder: str | Path):
        path = Path(folder) / INCEPTION_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"FID needs clean-fid's Inception network at {path}: copy {INCEPTION_FILE} "
                'there from a machine where clean-fid downloaded it (its '
                "build_feature_extractor('clean') fetches it into the temporary folder), or leave "
                '`inception` out to report the named feature distance')
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import build_resizer
        self.net = InceptionV3W(str(folder), download=False, resize_inside=False).eval()
        self.resize = build_resizer('clean')

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        """(B, 1 or 3, H, W) in [-1, 1] -> (B, 2048)."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        uint8 = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        resized = [torch.from_numpy(np.ascontiguousarray(self.resize(im.permute(1, 2, 0).numpy())))
                   for im in uint8]
        return self.net(torch.stack(resized).permute(0, 3, 1, 2).float())


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` (N, D) and ``b`` (M, D)
    (clean-fid's formula, float64)."""
    from cleanfid.fid import frechet_distance as fd
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(fd(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


@METRICS.register_module()
class FrechetDistanceMetric(BaseMetric):
    """Fréchet distance of generated (``pred``, (K, C, H, W), every sample) against real
    (``gt``, (C, H, W)) images in [-1, 1].

    Args:
        inception: a folder with clean-fid's ``inception-2015-12-05.pt``: FID, key
            ``fid_inception2048_clean``.
        judge: otherwise ``dict(config=..., checkpoint=...)`` of a classifier (:class:`Judge`)
            whose module ``judge_layer`` gives the features; the key ``fd_<feature_name>`` names
            them. Exactly one of ``inception`` and ``judge``.
        min_samples: fewer generated images raise (a Fréchet distance on fewer samples than
            feature dimensions is dominated by the covariance estimate; the count is logged and
            returned as ``<key>_num_images`` in any case).
    """

    default_prefix = 'recon'

    def __init__(self, inception: str | None = None, judge: dict | Judge | None = None,
                 judge_layer: str | None = None, feature_name: str | None = None,
                 min_samples: int = 2, **kwargs):
        super().__init__(**kwargs)
        if (inception is None) == (judge is None):
            raise ValueError('FrechetDistanceMetric takes exactly one of `inception` (a folder '
                             f'with {INCEPTION_FILE}: FID) and `judge` + `judge_layer` + '
                             '`feature_name` (a named feature distance)')
        if inception is not None:
            self.extract, self.key = CleanFIDInception(inception), 'fid_inception2048_clean'
        else:
            if not judge_layer or not feature_name:
                raise ValueError('a judge-feature distance needs `judge_layer` (the module whose '
                                 'output is the feature) and `feature_name` (it names the key, '
                                 "e.g. 'lenet5-fmnist-fc84')")
            judge = Judge(**judge) if isinstance(judge, dict) else judge
            self.extract = lambda images: judge.features(images, judge_layer)
            self.key = f'fd_{feature_name}'
        self.min_samples = min_samples

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for out in data_samples:
            self.results.append(dict(
                fake=self.extract(out['pred'].float()).numpy(),
                real=self.extract(out['gt'].float()[None]).numpy()))

    def compute_metrics(self, results: list) -> dict:
        fake = np.concatenate([r['fake'] for r in results])
        real = np.concatenate([r['real'] for r in results])
        if len(fake) < self.min_samples or len(real) < 2:
            raise ValueError(f'{self.key} needs at least {self.min_samples} generated and 2 real '
                             f'images, got {len(fake)} and {len(real)}')
        MMLogger.get_current_instance().info(
            f'{self.key}: {len(fake)} generated vs {len(real)} real images, '
            f'{fake.shape[1]}-d features')
        return {self.key: frechet_distance(fake, real), f'{self.key}_num_images': len(fake)}
