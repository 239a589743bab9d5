"""``mmext.MVPSegmentor``: an mmseg ``EncoderDecoder`` whose encoder is a frozen CLIP."""
from __future__ import annotations

import torch
from mmengine.model import BaseModule
from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor

from mmext.registry import MODELS


@MODELS.register_module()
class CLIPDenseEncoder(BaseModule):
    """A frozen CLIP image tower as a segmentation backbone.

    forward(inputs (B, 3, H, W)) -> ``[dense (B, D, h, w), global (B, D)]``: the MaskCLIP value
    path's dense features and the pooled embedding, computed without gradient.

    Args:
        clip: config of an ``mmext.OpenCLIPModel`` (built frozen).
    """

    def __init__(self, clip: dict, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.clip = MODELS.build(dict(clip, freeze=True))

    def forward(self, inputs: Tensor) -> list[Tensor]:
        with torch.no_grad():
            dense, pooled = self.clip.dense_features(inputs)
        return [dense, pooled]


@MODELS.register_module()
class MVPSegmentor(EncoderDecoder):
    """Open-vocabulary segmentor: dense CLIP features + a text-embedding decode head.

    One ``mmext.OpenCLIPModel`` serves both sides: the backbone (:class:`CLIPDenseEncoder`)
    runs its image tower (frozen, no gradient) and the decode head (``mmext.MVPSegHead``)
    encodes its prompts with its text tower. Everything else (training step, whole / slide
    inference, post-processing) is mmseg's ``EncoderDecoder``, built by its own ``__init__``.

    Args:
        clip: config of an ``mmext.OpenCLIPModel`` (kept frozen).
        decode_head: config of the decode head; it gets the CLIP through ``bind_clip``.
        pretrained: unused (the CLIP's weights are ``clip.pretrained``); accepted because
            mmseg's ``init_model`` sets it.
    """

    def __init__(self, clip: dict, decode_head: dict, train_cfg=None, test_cfg=None,
                 data_preprocessor=None, pretrained=None, init_cfg=None):
        super().__init__(backbone=dict(type='mmext.CLIPDenseEncoder', clip=clip),
                         decode_head=decode_head, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.decode_head.bind_clip(self.clip)

    @property
    def clip(self):
        """The CLIP (``mmext.OpenCLIPModel``) of the backbone and the decode head."""
        return self.backbone.clip
