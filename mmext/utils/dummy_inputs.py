"""A random image with the data samples OpenMMLab models need for a 'tensor'-mode forward."""
from __future__ import annotations

import torch


def tensor_mode_inputs(scope: str, shape: tuple[int, int],
                       generator: torch.Generator | None = None) -> tuple[tuple, dict]:
    """``(args, kwargs)`` for ``model(*args, **kwargs)``: one (1, 3, H, W) image, and for mmdet
    and mmseg a data sample whose metainfo gives the image and batch shapes."""
    shape = tuple(shape)
    image = torch.randn(1, 3, *shape, generator=generator)
    meta = dict(img_shape=shape, pad_shape=shape, batch_input_shape=shape, ori_shape=shape)
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        return (image, [DetDataSample(metainfo=meta)]), dict(mode='tensor')
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample
        return (image, [SegDataSample(metainfo=meta)]), dict(mode='tensor')
    if scope == 'mmpretrain':
        return (image, ), dict(mode='tensor')
    raise ValueError(f'inputs are known for mmdet, mmseg and mmpretrain models; the config\'s '
                     f'default_scope is {scope!r}')
