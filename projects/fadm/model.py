"""FADM (spec 11): a frozen coarse animator, AGCN and a pixel-space conditional denoiser
(diffusers ``UNet2DModel`` on ``concat(condition, x_t)``), DDPM training, DDIM sampling with one
noise per video shared by all its frames."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from mmext.diffusion import FixedNoise, noisy_batch, sample
from mmext.registry import MODELS


@MODELS.register_module()
class FADM(BaseModel):
    """Face animation by a coarse animator refined with attribute-guided diffusion.

    Args:
        animator: the coarse animator ``A(source, driving)`` (frozen; e.g.
            ``mmext.KeypointAnimator`` in the demo, ``mmext.FOMMAnimator`` for FOMM).
        animator_checkpoint: its weights (read by ``init_weights``, i.e. when training starts;
            a FADM checkpoint carries them afterwards).
        agcn: ``mmext.AGCN``.
        unet: the denoiser, a diffusers ``UNet2DModel`` with ``in_channels`` twice the frame's.
        scheduler: the training noise schedule (spec: DDPM, 100 steps, linear 1e-3 -> 0.2).
        sample_scheduler: DDIM with the same betas (``eta`` in ``sampling``).
        feat_weight: weight of AGCN's feature loss (spec: 1.0).
        use_attributes: False zeroes the attribute difference (the ablation row).
        denoiser_sees_coarse: True feeds the denoiser ``concat(condition, coarse, x_t)``
            (``in_channels`` three times the frame's): a diagnosis, not FADM's design, which
            shows the denoiser the coarse frame only through AGCN's condition image.
        reference: what AGCN's reference slot gets: 'coarse' (spec 11.2's proposal) or
            'driving' (the released training code; leaks the ground truth's colours, and the
            driving frame is not available at test, where 'coarse' is used).
        sampling: ``num_steps`` (DDIM steps, reported with every prediction), ``eta`` (1: the
            posterior noise), ``seed`` (a video's noise is drawn from ``seed`` and its
            ``sequence_id``: the same for every frame, whatever the batching).
    """

    def __init__(self, animator: dict, agcn: dict, unet: dict, scheduler: dict,
                 sample_scheduler: dict | None = None, animator_checkpoint: str | None = None,
                 feat_weight: float = 1.0, use_attributes: bool = True,
                 denoiser_sees_coarse: bool = False, reference: str = 'coarse', sampling: dict | None = None,
                 data_preprocessor: dict | None = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if reference not in ('coarse', 'driving'):
            raise ValueError(f"reference must be 'coarse' or 'driving', got {reference!r}")
        if animator_checkpoint:
            animator = dict(animator, init_cfg=dict(type='Pretrained',
                                                    checkpoint=animator_checkpoint))
        self.animator = MODELS.build(animator).requires_grad_(False)
        self.agcn = MODELS.build(agcn)
        self.unet = MODELS.build(unet)
        self.denoiser_sees_coarse = denoiser_sees_coarse
        inputs, parts = (3, 'condition, coarse, x_t') if denoiser_sees_coarse else (
            2, 'condition, x_t')
        if self.unet.config.in_channels != inputs * self.agcn.in_channels:
            raise ValueError(f'the denoiser takes concat({parts}): in_channels must be '
                             f'{inputs * self.agcn.in_channels}, got '
                             f'{self.unet.config.in_channels}')
        self.scheduler = MODELS.build(scheduler)
        self.sample_scheduler = MODELS.build(sample_scheduler or scheduler)
        self.feat_weight, self.use_attributes, self.reference = (feat_weight, use_attributes,
                                                                  reference)
        self.sampling = dict(dict(num_steps=100, eta=1.0, seed=0), **(sampling or {}))

    def train(self, mode: bool = True):
        super().train(mode)
        self.animator.eval()          # frozen, normalisation statistics included
        return self

    @torch.no_grad()
    def coarse(self, source: Tensor, driving: Tensor) -> Tensor:
        return self.animator(source, driving, mode='tensor')

    def attributes(self, source_attributes: Tensor, driving_attributes: Tensor) -> Tensor:
        a = source_attributes - driving_attributes
        return a if self.use_attributes else torch.zeros_like(a)

    def denoise(self, x: Tensor, t: Tensor, condition: Tensor, coarse: Tensor) -> Tensor:
        """The denoiser's prediction for ``x`` (B, C, H, W) at steps ``t`` (B,)."""
        inputs = [condition, coarse, x] if self.denoiser_sees_coarse else [condition, x]
        return self.unet(torch.cat(inputs, 1), t).sample

    def forward(self, source: Tensor, driving: Tensor, source_attributes: Tensor,
                driving_attributes: Tensor, mode: str = 'tensor', **batch):
        if source.shape != driving.shape:
            raise ValueError(f'source {tuple(source.shape)} and driving {tuple(driving.shape)} '
                             'frames must have the same shape')
        attrs = self.attributes(source_attributes, driving_attributes)
        if mode == 'loss':
            return self.loss(source, driving, attrs)
        if mode == 'predict':
            return self.predict(source, driving, attrs, **batch)
        return self.coarse(source, driving)

    def loss(self, source: Tensor, driving: Tensor, attrs: Tensor) -> dict:
        coarse = self.coarse(source, driving)
        batch = noisy_batch(self.scheduler, driving)
        reference = driving if self.reference == 'driving' else coarse
        condition, feat = self.agcn(coarse, reference, batch.timesteps, attrs)
        pred = self.denoise(batch.noisy, batch.timesteps, condition, coarse)
        # mean-reduced L1 (the paper sums: the same gradient direction, lr scaled by C*H*W)
        return {'loss_diff': F.l1_loss(pred, batch.target),
                'loss_feat': self.feat_weight * feat}

    @torch.no_grad()
    def refine(self, coarse: Tensor, attrs: Tensor, noise: FixedNoise) -> Tensor:
        """Sample the refined frames of ``coarse`` (B, C, H, W) with ``noise`` (batch 1 or B)."""
        cfg = self.sampling
        colour = self.agcn.colour_features(coarse, coarse)      # the same at every step

        def denoiser(x, t):
            condition, _ = self.agcn(coarse, coarse, t, attrs, colour)
            return self.denoise(x, t, condition, coarse)

        return sample(denoiser, self.sample_scheduler, len(coarse), noise, cfg['num_steps'],
                      cfg['eta']).clamp(-1, 1)

    def video_noise(self, sequence_ids, shape: tuple[int, ...]) -> FixedNoise:
        """One noise per sequence, the same for every frame of it (drawn from its id)."""
        cfg = self.sampling
        return FixedNoise.stack([FixedNoise.draw(shape, cfg['num_steps'],
                                                 cfg['seed'] * 1_000_003 + int(i))
                                 for i in sequence_ids])

    def predict(self, source: Tensor, driving: Tensor, attrs: Tensor, sequence_id=None,
                frame=None, **_) -> list[dict]:
        """Per frame: ``pred`` (1, C, H, W) refined, ``coarse`` and ``gt`` (C, H, W) in
        [-1, 1], ``sequence_id``, ``frame``, ``num_steps``."""
        b = len(source)
        ids = (sequence_id.tolist() if torch.is_tensor(sequence_id)
               else list(sequence_id) if sequence_id is not None else [None] * b)
        frames = frame.tolist() if torch.is_tensor(frame) else list(frame or [0] * b)
        coarse = self.coarse(source, driving)
        # frames without a sequence: one noise each (drawn from the position in the batch)
        keys = [i if i is not None else -1 - k for k, i in enumerate(ids)]
        noise = self.video_noise(keys, tuple(source.shape[1:])).to(source.device)
        refined = self.refine(coarse, attrs, noise).cpu()
        return [dict(pred=refined[i:i + 1], coarse=coarse[i].cpu(), gt=driving[i].cpu(),
                     source=source[i].cpu(),
                     sequence_id=int(ids[i]) if ids[i] is not None else None,
                     frame=int(frames[i]),
                     num_steps=self.sampling['num_steps']) for i in range(b)]
