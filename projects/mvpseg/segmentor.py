"""``mmext.MVPSegmentor``: an mmseg ``EncoderDecoder`` whose encoder is a frozen CLIP."""
from __future__ import annotations

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.segmentors.base import BaseSegmentor
from torch import Tensor

from mmext.registry import MODELS


@MODELS.register_module()
class MVPSegmentor(EncoderDecoder):
    """Open-vocabulary segmentor: dense CLIP features + a text-embedding decode head.

    One ``mmext.OpenCLIPModel`` serves both sides: its image tower gives the features
    ``[dense (B, D, h, w), global (B, D)]`` (MaskCLIP value path, frozen, no gradient) and the
    decode head (``mmext.MVPSegHead``) encodes its prompts with its text tower. Everything else
    (training step, whole / slide inference, post-processing) is mmseg's ``EncoderDecoder``.

    Args:
        clip: config of an ``mmext.OpenCLIPModel`` (kept frozen).
        decode_head: config of the decode head; it gets the CLIP through ``bind_clip``.
        pretrained: unused (the CLIP's weights are ``clip.pretrained``); accepted because
            mmseg's ``init_model`` sets it.
    """

    def __init__(self, clip: dict, decode_head: dict, train_cfg=None, test_cfg=None,
                 data_preprocessor=None, pretrained=None, init_cfg=None):
        BaseSegmentor.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.clip = MODELS.build(dict(clip, freeze=True))
        self._init_decode_head(decode_head)
        self.decode_head.bind_clip(self.clip)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, inputs: Tensor) -> list[Tensor]:
        with torch.no_grad():
            dense, pooled = self.clip.dense_features(inputs)
        return [dense, pooled]
