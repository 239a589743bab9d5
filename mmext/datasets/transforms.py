"""Data transforms OpenMMLab lacks."""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform

from mmext.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ReverseChannels(BaseTransform):
    """Reverse the channel order of ``results['img']`` (RGB <-> BGR).

    For sequences that join array datasets stored as RGB (CIFAR) with image files that load as
    BGR (ImageNet): reverse one side so that a single ``to_rgb`` setting of the data
    preprocessor fits both.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f'ReverseChannels needs an (H, W, 3) image, got {img.shape}')
        results['img'] = np.ascontiguousarray(img[..., ::-1])
        return results
