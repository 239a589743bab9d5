"""Face-motion metrics of animated frames with a named landmark detector (MediaPipe's 468-point
face mesh, ``projects/fadm/attributes.py``):

- ``akd_mediapipe468``: average keypoint distance, the mean L2 distance in pixels (at the frame's
  size) between the landmarks of the generated and of the driving frame;
- ``mkr_mediapipe468``: missing keypoint rate, the share of generated frames where no face is
  found although the driving frame has one (such frames are left out of AKD and AED);
- ``aed_mediapipe_attr_l1``: average expression distance, here the mean L1 distance of the 9-d
  attribute vectors (pose in radians and expression coefficients) of generated and driving
  frames; not the identity-embedding L2 that other papers also call AED.

Frames in [-1, 1], grey or RGB; the coarse frames' figures (``coarse_*``) beside the refined
ones. Frames whose driving frame has no face are counted in ``num_frames_without_face``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from torch import Tensor

from mmext.registry import METRICS

from .attributes import (
    MediaPipeFaceAttributes,
    NoFaceFoundError,
    expression_from_landmarks,
    pose_from_landmarks,
)


def to_uint8_rgb(frame: Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    image = ((frame.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return np.ascontiguousarray(image.permute(1, 2, 0).numpy())


@METRICS.register_module()
class FaceMotionMetric(BaseMetric):
    """AKD, MKR and AED (definitions in the module docstring) of ``pred`` (first sample) and
    ``coarse`` against ``gt``."""

    default_prefix = 'anim'

    def __init__(self, min_detection_confidence: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.extractor = MediaPipeFaceAttributes(min_detection_confidence)

    def _landmarks(self, frame: Tensor) -> np.ndarray | None:
        try:
            return self.extractor.landmarks(to_uint8_rgb(frame))
        except NoFaceFoundError:
            return None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for out in data_samples:
            row = dict(gt=self._landmarks(out['gt']), pred=self._landmarks(out['pred'][0]))
            if out.get('coarse') is not None:
                row['coarse'] = self._landmarks(out['coarse'])
            self.results.append(row)

    @staticmethod
    def _attributes(points: np.ndarray) -> np.ndarray:
        return np.concatenate([pose_from_landmarks(points), expression_from_landmarks(points)])

    def compute_metrics(self, results: list) -> dict:
        with_face = [r for r in results if r['gt'] is not None]
        out = {'num_frames_without_face': len(results) - len(with_face)}
        if not with_face:
            raise ValueError('no driving frame has a face that MediaPipe finds: AKD / AED need '
                             'face frames')
        kinds = ['pred'] + (['coarse'] if all('coarse' in r for r in results) else [])
        for kind in kinds:
            prefix = '' if kind == 'pred' else 'coarse_'
            found = [r for r in with_face if r[kind] is not None]
            out[f'{prefix}mkr_mediapipe468'] = 1 - len(found) / len(with_face)
            if found:
                out[f'{prefix}akd_mediapipe468'] = float(np.mean([
                    np.linalg.norm(r[kind][:, :2] - r['gt'][:, :2], axis=1).mean()
                    for r in found]))
                out[f'{prefix}aed_mediapipe_attr_l1'] = float(np.mean([
                    np.abs(self._attributes(r[kind]) - self._attributes(r['gt'])).mean()
                    for r in found]))
        return out
