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


@TRANSFORMS.register_module()
class VoxelPad(BaseTransform):
    """Wrap-pad ``results['voxels']`` (V,) to a multiple of ``multiple`` (the fMRI encoder's
    patch size), repeating the first voxels as MinD-Vis does. ``always=True`` adds a full
    ``multiple`` when V already is one (MinD-Vis's own rule, which its checkpoints' position
    embeddings were made with)."""

    def __init__(self, multiple: int = 16, always: bool = False):
        if multiple < 1:
            raise ValueError(f'multiple must be positive, got {multiple}')
        self.multiple, self.always = multiple, always

    def transform(self, results: dict) -> dict:
        v = np.asarray(results['voxels'])
        if v.ndim != 1:
            raise ValueError(f'VoxelPad needs a (V,) voxel vector, got {v.shape}')
        extra = -len(v) % self.multiple
        if extra == 0 and self.always:
            extra = self.multiple
        results['voxels'] = np.pad(v, (0, extra), mode='wrap') if extra else v
        return results


@TRANSFORMS.register_module()
class VoxelDropout(BaseTransform):
    """Zero a random share ``p`` of ``results['voxels']`` (training augmentation; spec: 20%)."""

    def __init__(self, p: float = 0.2):
        if not 0 <= p < 1:
            raise ValueError(f'p must be in [0, 1), got {p}')
        self.p = p

    def transform(self, results: dict) -> dict:
        v = np.array(results['voxels'], dtype=np.float32, copy=True)
        v[np.random.rand(len(v)) < self.p] = 0
        results['voxels'] = v
        return results


@TRANSFORMS.register_module()
class PackFMRIInputs(BaseTransform):
    """``voxels`` (V,) and ``img`` (H, W[, C]) uint8 -> ``{'voxels': float32 tensor (V,),
    'image': float tensor (C, H, W) in [-1, 1], 'label': int, 'image_id': int, 'has_voxels':
    bool}`` (False for image-only items; a plain dict:
    the models take them as keyword arguments after ``default_collate``)."""

    def transform(self, results: dict) -> dict:
        import torch
        img = np.asarray(results['img'])
        if img.ndim == 2:
            img = img[..., None]
        image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
        return dict(voxels=torch.as_tensor(np.asarray(results['voxels'], dtype=np.float32)),
                    image=image / 127.5 - 1, label=int(results.get('gt_label', -1)),
                    image_id=int(results.get('image_id', -1)),
                    has_voxels=bool(results.get('has_voxels', True)))
