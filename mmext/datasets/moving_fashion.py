"""Moving Fashion-MNIST: FADM's demo data (issue 22). One item under two known "poses"
(rotation, scale, translation) and a known non-rigid "expression" warp gives a source and a
driving frame; a test sequence keeps the source and moves the driving pose along a straight path.

Attributes are the 6 warp parameters, normalised to about [-1, 1]: rotation / 30 degrees,
log(scale) / log(1.15), translation x and y / 3 pixels, two expression coefficients. They play
the part of DECA's expression and pose (FADM conditions on source minus driving).
Frames are rendered on the fly, deterministic from (seed, split, index).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import BaseDataset
from torch import Tensor

from mmext.registry import DATASETS

from .fashion_mnist import load_fashion_mnist

NUM_ATTRIBUTES = 6
MAX_ROTATION = 30.0      # degrees
MAX_SCALE = 1.15
MAX_SHIFT = 3.0          # pixels
EXPRESSION_AMPLITUDE = 0.15   # displacement of the expression warp, in units of half the frame


def warp_grid(attributes: Tensor, size: int) -> Tensor:
    """Sampling grid (B, size, size, 2) that renders an item under ``attributes`` (B, 6).

    An output pixel p (coordinates in [-1, 1]) reads the item at ``u + E(u)`` with
    ``u = R(-theta) (p - t) / s`` (the inverse pose) and the expression field
    ``E(u) = A (e1 sin(pi u_y), e2 sin(pi u_x))``.
    """
    theta = attributes[:, 0] * math.radians(MAX_ROTATION)
    scale = torch.exp(attributes[:, 1] * math.log(MAX_SCALE))
    shift = attributes[:, 2:4] * (2 * MAX_SHIFT / (size - 1))   # pixels (align_corners)
    expression = attributes[:, 4:6]
    line = torch.linspace(-1, 1, size, dtype=attributes.dtype, device=attributes.device)
    y, x = torch.meshgrid(line, line, indexing='ij')
    p = torch.stack([x, y], -1)[None] - shift[:, None, None]          # (B, H, W, 2)
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    ux = (cos * p[..., 0] + sin * p[..., 1]) / scale[:, None, None]
    uy = (-sin * p[..., 0] + cos * p[..., 1]) / scale[:, None, None]
    ex = EXPRESSION_AMPLITUDE * expression[:, 0, None, None] * torch.sin(math.pi * uy)
    ey = EXPRESSION_AMPLITUDE * expression[:, 1, None, None] * torch.sin(math.pi * ux)
    return torch.stack([ux + ex, uy + ey], -1)


def render(items: Tensor, attributes: Tensor) -> Tensor:
    """Items (B, C, H, W) in [-1, 1] (background -1) under ``attributes`` (B, 6) ->
    frames (B, C, H, W), bilinear, background outside the item."""
    if attributes.shape[-1] != NUM_ATTRIBUTES or attributes.shape[0] != items.shape[0]:
        raise ValueError(f'attributes must be (B, {NUM_ATTRIBUTES}) for {items.shape[0]} items, '
                         f'got {tuple(attributes.shape)}')
    grid = warp_grid(attributes.to(items.dtype), items.shape[-1])
    return F.grid_sample(items + 1, grid, mode='bilinear', padding_mode='zeros',
                         align_corners=True) - 1


@DATASETS.register_module()
class MovingFashionDataset(BaseDataset):
    """Source / driving frame pairs of moving Fashion-MNIST items (32 x 32 grey, [-1, 1]).

    Args:
        split: 'train' (random pairs of Fashion-MNIST training items 0..54,999), 'val'
            (sequences of training items 55,000..59,999) or 'test' (sequences of test items).
        num_pairs: pairs of the train split.
        num_sequences: sequences of val / test (balanced over the ten classes).
        sequence_length: frames per sequence (the driving pose moves on a straight path between
            two random poses; the source frame stays).
        seed: the draw of items and poses.
        fashion_root: Fashion-MNIST's folder (default: as :func:`load_fashion_mnist`).

    Items: ``source``, ``driving`` (1, 32, 32), ``source_attributes``, ``driving_attributes``
    (6,), ``label``, ``sequence_id``, ``frame`` (train pairs: their index and 0).
    """

    METAINFO = {'classes': ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                            'Shirt', 'Sneaker', 'Bag', 'Ankle boot')}
    SPLITS = ('train', 'val', 'test')

    def __init__(self, split: str = 'train', num_pairs: int = 20000, num_sequences: int = 40,
                 sequence_length: int = 8, seed: int = 0, fashion_root: str | None = None,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'split must be one of {self.SPLITS}, got {split!r}')
        if sequence_length < 1 or num_sequences < 1 or num_pairs < 1:
            raise ValueError('num_pairs, num_sequences and sequence_length must be positive, got '
                             f'{num_pairs}, {num_sequences}, {sequence_length}')
        self.split, self.num_pairs, self.seed = split, num_pairs, seed
        self.num_sequences, self.sequence_length = num_sequences, sequence_length
        self.fashion_root = fashion_root
        kwargs.setdefault('serialize_data', False)
        super().__init__(**kwargs)

    def load_data_list(self) -> list[dict]:
        images, labels = load_fashion_mnist('test' if self.split == 'test' else 'train',
                                            self.fashion_root)
        self._images = images
        rng = np.random.default_rng([self.seed, self.SPLITS.index(self.split)])
        if self.split == 'train':
            chosen = rng.integers(0, 55000, self.num_pairs)
            poses = random_attributes(rng, 2 * self.num_pairs).reshape(self.num_pairs, 2, -1)
            return [dict(item=i, label=int(labels[i]), source_attributes=p[0],
                         driving_attributes=p[1], sequence_id=k, frame=0)
                    for k, (i, p) in enumerate(zip(chosen, poses))]
        pool = np.arange(55000, 60000) if self.split == 'val' else np.arange(len(images))
        per_class = [pool[labels[pool] == c] for c in range(10)]
        out = []
        for k in range(self.num_sequences):
            i = int(rng.choice(per_class[k % 10]))
            source, start, end = random_attributes(rng, 3)
            for f in range(self.sequence_length):
                w = f / max(self.sequence_length - 1, 1)
                out.append(dict(item=i, label=int(labels[i]), source_attributes=source,
                                driving_attributes=(1 - w) * start + w * end, sequence_id=k,
                                frame=f))
        return out

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        item = torch.from_numpy(np.pad(self._images[info['item']], 2)).float()[None] / 127.5 - 1
        attrs = torch.from_numpy(np.stack([info['source_attributes'],
                                           info['driving_attributes']])).float()
        frames = render(item[None].expand(2, -1, -1, -1), attrs)
        return dict(source=frames[0], driving=frames[1], source_attributes=attrs[0],
                    driving_attributes=attrs[1], label=info['label'],
                    sequence_id=info['sequence_id'], frame=info['frame'])


def random_attributes(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 6) attributes uniform in [-1, 1] (pose and expression)."""
    return rng.uniform(-1, 1, (n, NUM_ATTRIBUTES)).astype(np.float32)
