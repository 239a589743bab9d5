"""A random image with the data samples OpenMMLab models need for a 'tensor'-mode forward."""
from __future__ import annotations

import torch


def tensor_mode_inputs(scope: str, shape: tuple[int, int],
                       generator: torch.Generator | None = None,
                       channels: int = 3) -> tuple[tuple, dict]:
    """``(args, kwargs)`` for ``model(*args, **kwargs)``: one (1, channels, H, W) image, and for
    mmdet and mmseg a data sample whose metainfo gives the image and batch shapes."""
    shape = tuple(shape)
    image = torch.randn(1, channels, *shape, generator=generator)
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


def input_channels(model: torch.nn.Module, default: int = 3) -> int:
    """The channels a model's images have: those of its first convolution (a CNN's stem, a
    ViT's patch embedding), or ``default`` where it has none."""
    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    return first.in_channels if first is not None else default
