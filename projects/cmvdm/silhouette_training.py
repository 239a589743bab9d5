"""Training of the silhouette assistant network (spec 10.4), a model of its own that the
CMVDM stage-B config then loads frozen.

``phase='encoder'``: the image -> voxel encoder E_s learns from the paired trials (MSE, plus an
L1 penalty on its last layer's weights). ``phase='decoder'`` (``load_from`` the encoder run,
E_s frozen): the voxel -> image decoder D_s learns from three terms, weighted 1 / 1 / 0 by
default: supervised (voxels -> image), encoder-decoder on every image of the batch, including
the image-only ones (``has_voxels`` False: image -> E_s -> D_s), and decoder-encoder
(voxels -> D_s -> E_s -> voxels), plus the L1 penalty on the decoder's voxel weights. Image
loss: MAE + ``perceptual`` (e.g. ``mmext.VGGPerceptualLoss``: VGG16 blocks 1-5 weighted
10 / 10 / 10 / 10 / 2, when the config gives it) + ``tv_weight`` TV (exponent 2.5) +
``ssim_weight`` (1 - SSIM), images in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from mmext.evaluation import gaussian_ssim, pixel_pcc
from mmext.registry import MODELS


def total_variation(x: Tensor, power: float = 2.5) -> Tensor:
    """``mean((dx^2 + dy^2)^(power / 2))`` over the image (spec 10.4's TV with p = 2.5)."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx ** 2 + dy ** 2 + 1e-8).pow(power / 2).mean()


@MODELS.register_module()
class SilhouetteTrainer(BaseModel):
    """Trains ``decoder`` (``SilhouetteDecoder``) and ``encoder`` (``SilhouetteEncoder``).

    ``predict`` returns decoder reconstructions in the CMVDM output format (``pred`` (1, C, H, W)
    in [-1, 1], ``gt``), so ``mmext.ReconstructionMetric`` scores it.
    """

    def __init__(self, decoder: dict, encoder: dict, phase: str = 'decoder',
                 weights: tuple[float, float, float] = (1.0, 1.0, 0.0),
                 tv_weight: float = 0.3, ssim_weight: float = 0.1, l1_weight: float = 1e-6,
                 perceptual: dict | None = None, data_preprocessor: dict | None = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if phase not in ('encoder', 'decoder'):
            raise ValueError(f"phase must be 'encoder' or 'decoder', got {phase!r}")
        self.decoder, self.encoder = MODELS.build(decoder), MODELS.build(encoder)
        self.phase, self.weights = phase, tuple(weights)
        self.tv_weight, self.ssim_weight, self.l1_weight = tv_weight, ssim_weight, l1_weight
        self.perceptual = MODELS.build(perceptual) if perceptual else None
        frozen = self.encoder if phase == 'decoder' else self.decoder
        frozen.requires_grad_(False)

    def image_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        loss = F.l1_loss(pred, target) + self.tv_weight * total_variation(pred)
        if self.perceptual is not None:
            loss = loss + self.perceptual(pred, target)
        if self.ssim_weight:
            loss = loss + self.ssim_weight * (1 - gaussian_ssim(pred, target).mean())
        return loss

    def forward(self, voxels: Tensor, image: Tensor, mode: str = 'loss',
                has_voxels: Tensor | None = None, **batch):
        target = (image + 1) / 2                                  # [0, 1]
        paired = torch.ones(len(voxels), dtype=torch.bool, device=voxels.device) \
            if has_voxels is None else has_voxels.bool()
        if mode == 'predict':
            pred = self.decoder(voxels) * 2 - 1
            pred = F.interpolate(pred, size=image.shape[-2:], mode='bilinear',
                                 align_corners=False) if pred.shape[-2:] != image.shape[-2:] else pred
            return [dict(pred=p[None].cpu(), gt=g.cpu(), label=int(lb), image_id=int(i))
                    for p, g, lb, i in zip(pred, image, batch.get('label', [-1] * len(pred)),
                                           batch.get('image_id', [-1] * len(pred)))]
        if mode != 'loss':
            return self.decoder(voxels)
        losses = {}
        if self.phase == 'encoder':
            if not paired.any():
                raise ValueError('a batch without fMRI trials in the encoder phase: E_s learns '
                                 'from paired items only (drop image-only data from its config)')
            v = self.encoder(target[paired])
            losses['loss_enc'] = F.mse_loss(v, voxels[paired])
            losses['loss_l1'] = self.l1_weight * self.encoder.fc.weight.abs().sum()
            return losses
        size = target.shape[-2:]

        def decode(v):
            out = self.decoder(v)
            return F.interpolate(out, size=size, mode='bilinear', align_corners=False) \
                if out.shape[-2:] != size else out

        sup, encdec, decenc = self.weights
        if sup and paired.any():
            losses['loss_sup'] = sup * self.image_loss(decode(voxels[paired]), target[paired])
        if encdec:
            losses['loss_encdec'] = encdec * self.image_loss(decode(self.encoder(target)), target)
        if decenc and paired.any():
            v = voxels[paired]
            losses['loss_decenc'] = decenc * F.mse_loss(self.encoder(decode(v)), v)
        losses['loss_l1'] = self.l1_weight * self.decoder.fc.weight.abs().sum()
        with torch.no_grad():
            if paired.any():
                losses['pcc'] = pixel_pcc(decode(voxels[paired]), target[paired]).mean()
        return losses
