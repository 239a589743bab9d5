"""The CMVDM model: an fMRI-conditioned diffusion model whose stages declare in the config which
parameters train (spec 10.6-10.7).

Stage A (semantic): fMRI encoder -> conditioner -> UNet cross-attention and time condition,
with the CLIP alignment loss when ``align_head`` is set. Stage B (control): a ControlNet built
from the UNet (its weights copied from the stage-A UNet at the first training step) takes the
hint ``silhouette(v) + residual(v)``; only the ControlNet and the residual network train.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from mmext.diffusion import FixedNoise, noisy_batch, sample
from mmext.registry import MODELS


@MODELS.register_module()
class CMVDM(BaseModel):
    """fMRI (B, V) -> images (B, C, H, W) in [-1, 1].

    Args:
        encoder, conditioner: ``FMRIMAEEncoder`` and ``FMRIConditioner`` configs.
        unet: a ``type='mmext.Diffusers'`` UNet2DConditionModel config; with a conditioner time
            branch, ``class_embed_type='identity'`` (the condition is added to the timestep
            embedding).
        scheduler: the training noise scheduler (``mmext.DiffusersScheduler``);
            ``sample_scheduler`` the sampler's (default: the same).
        vae: optional latent autoencoder (``mmext.Diffusers`` VQModel / AutoencoderKL, frozen):
            diffusion then runs on its latents, scaled by ``latent_scale``.
        align_head, align_loss, clip, clip_image_size: the semantic alignment (spec 10.3);
            ``clip`` is a frozen ``mmext.OpenCLIPModel`` config whose image embedding of the
            stimulus is the target (cached per training image id unless
            ``cache_clip_targets=False``). The loss is computed only while the head trains
            (stage A; stage B's loss is the diffusion loss alone).
        silhouette: a frozen ``SilhouetteDecoder`` config; ``silhouette_checkpoint`` the
            ``SilhouetteTrainer`` run whose decoder it loads (at ``init_weights``, before
            ``load_from`` / resume, which keep the loaded weights).
        residual: a ``ResidualHintNet`` config.
        controlnet: kwargs of ``ControlNetModel.from_unet`` (``conditioning_channels``,
            ``conditioning_embedding_out_channels``); None: no control (stage A).
        trainable: regular expressions over parameter names; a parameter trains if one matches
            (``re.match``), all others are frozen (no gradient).
        sampling: ``num_steps``, ``eta``, ``num_samples`` per fMRI, ``seed`` (sample k of test
            item i uses FixedNoise seed ``seed + 1000 * i + k``), ``guidance`` unused.
    """

    def __init__(self, encoder: dict, conditioner: dict, unet: dict, scheduler: dict,
                 sample_scheduler: dict | None = None, vae: dict | None = None,
                 latent_scale: float = 1.0, align_head: dict | None = None,
                 align_loss: dict | None = None, clip: dict | None = None,
                 clip_image_size: int = 224, silhouette: dict | None = None,
                 silhouette_checkpoint: str | None = None, residual: dict | None = None, controlnet: dict | None = None,
                 trainable: Sequence[str] = ('.*', ), sampling: dict | None = None,
                 cache_clip_targets: bool = True,
                 data_preprocessor: dict | None = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder)
        self.conditioner = MODELS.build(conditioner)
        self.unet = MODELS.build(unet)
        self.scheduler = MODELS.build(scheduler)
        self.sample_scheduler = MODELS.build(sample_scheduler or scheduler)
        self.vae = MODELS.build(vae) if vae else None
        self.latent_scale = latent_scale
        self.align_head = MODELS.build(align_head) if align_head else None
        self.align_loss = MODELS.build(align_loss or dict(type='mmext.CLIPAlignLoss'))
        if self.align_head is not None and clip is None:
            raise ValueError('align_head needs clip=dict(...): the CLIP whose image embedding '
                             'of the stimulus is the alignment target')
        self.clip = MODELS.build(dict(dict(type='mmext.OpenCLIPModel', freeze=True), **clip)) \
            if clip and self.align_head is not None else None
        self.clip_image_size = clip_image_size
        self.cache_clip_targets = cache_clip_targets
        self._clip_cache: dict[int, Tensor] = {}   # training image id -> its (frozen) target
        if silhouette_checkpoint and silhouette:
            silhouette = dict(silhouette, init_cfg=dict(type='Pretrained', prefix='decoder.',
                                                        checkpoint=silhouette_checkpoint))
        self.silhouette = MODELS.build(silhouette) if silhouette else None
        self.residual = MODELS.build(residual) if residual else None
        self.controlnet = None
        if controlnet is not None:
            from diffusers import ControlNetModel
            self.controlnet = ControlNetModel.from_unet(self.unet, **controlnet)
            # 0 until the ControlNet holds the weights of the UNet it controls (set at the first
            # training step, after load_from; saved, so a resumed run keeps its ControlNet)
            self.register_buffer('controlnet_synced', torch.zeros(()))
        elif silhouette or residual:
            raise ValueError('silhouette / residual hints need controlnet=dict(...)')
        self.sampling = dict(dict(num_steps=50, eta=1.0, num_samples=1, seed=0), **(sampling or {}))
        self.trainable = [re.compile(p) for p in trainable]
        for frozen in (self.vae, self.clip, self.silhouette):
            if frozen is not None:
                frozen.requires_grad_(False)
        self._apply_trainable()

    # ----------------------------------------------------------------- stages
    def _apply_trainable(self):
        matched = 0
        for name, param in self.named_parameters():
            keep = any(p.match(name) for p in self.trainable) and not any(
                name.startswith(f + '.') for f in ('vae', 'clip', 'silhouette'))
            param.requires_grad_(keep)
            matched += keep
        if not matched:
            raise ValueError(f'trainable={[p.pattern for p in self.trainable]} matches no '
                             'parameter: nothing would train')

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def sync_controlnet(self) -> None:
        """Copy the UNet's time embedding, input convolution, encoder and middle block into the
        ControlNet (its zero convolutions stay zero), once per run (``controlnet_synced``)."""
        if self.controlnet is None or bool(self.controlnet_synced):
            return
        for part in ('conv_in', 'time_proj', 'time_embedding', 'down_blocks', 'mid_block',
                     'class_embedding'):
            src, dst = getattr(self.unet, part, None), getattr(self.controlnet, part, None)
            if src is not None and dst is not None:
                dst.load_state_dict(src.state_dict())
        self.controlnet_synced.fill_(1)

    # ----------------------------------------------------------------- pieces
    def condition(self, voxels: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.conditioner(self.encoder(voxels))

    def hint(self, voxels: Tensor) -> Tensor | None:
        if self.controlnet is None:
            return None
        parts = [m(voxels) for m in (self.silhouette, self.residual) if m is not None]
        if not parts:
            raise ValueError('a ControlNet needs a hint: set silhouette and / or residual')
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out

    def denoise(self, x: Tensor, t: Tensor, context: Tensor, time_cond: Tensor | None,
                hint: Tensor | None) -> Tensor:
        extra = {}
        if hint is not None:
            down, mid = self.controlnet(x, t, encoder_hidden_states=context, controlnet_cond=hint,
                                        class_labels=time_cond, return_dict=False)
            extra = dict(down_block_additional_residuals=down, mid_block_additional_residual=mid)
        return self.unet(x, t, encoder_hidden_states=context, class_labels=time_cond,
                         **extra).sample

    def to_latent(self, image: Tensor) -> Tensor:
        if self.vae is None:
            return image
        with torch.no_grad():
            enc = self.vae.encode(image)
            latent = enc.latents if hasattr(enc, 'latents') else enc.latent_dist.mode()
        return latent * self.latent_scale

    def from_latent(self, latent: Tensor) -> Tensor:
        if self.vae is None:
            return latent
        with torch.no_grad():
            return self.vae.decode(latent / self.latent_scale).sample

    def clip_target(self, image: Tensor, image_id: Tensor | None = None) -> Tensor:
        """CLIP image embedding (B, D) of stimuli in [-1, 1] (grey is repeated to RGB). With
        ``image_id`` (>= 0) and ``cache_clip_targets`` the embeddings are cached per image (the
        CLIP is frozen; the spec proposes encoding the stimulus once, 10.3): with pixel
        augmentation the target is then the embedding of the view first seen."""
        if image_id is not None and self.cache_clip_targets:
            ids = [int(i) for i in image_id]
            missing = [k for k, i in enumerate(ids) if i < 0 or i not in self._clip_cache]
            fresh = dict(zip(missing, self.clip_target(image[missing]))) if missing else {}
            for k in missing:
                if ids[k] >= 0:
                    self._clip_cache[ids[k]] = fresh[k]
            return torch.stack([fresh[k] if k in fresh else self._clip_cache[i]
                                for k, i in enumerate(ids)])
        x = (image + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=self.clip_image_size, mode='bilinear', align_corners=False)
        mean, std = self.clip.image_mean_std
        x = (x - x.new_tensor(mean).view(1, 3, 1, 1)) / x.new_tensor(std).view(1, 3, 1, 1)
        with torch.no_grad():
            return self.clip.encode_image(x)

    # ------------------------------------------------------------------ modes
    def forward(self, voxels: Tensor, image: Tensor | None = None, mode: str = 'tensor',
                **batch):
        if mode == 'loss':
            return self.loss(voxels, image, batch.get('image_id'))
        if mode == 'predict':
            return self.predict(voxels, image, **batch)
        return self.condition(voxels)[0]

    def loss(self, voxels: Tensor, image: Tensor, image_id: Tensor | None = None) -> dict:
        if self.training:
            self.sync_controlnet()
        context, time_cond = self.condition(voxels)
        x0 = self.to_latent(image)
        batch = noisy_batch(self.scheduler, x0)
        pred = self.denoise(batch.noisy, batch.timesteps, context, time_cond, self.hint(voxels))
        losses = {'loss_ldm': F.mse_loss(pred, batch.target)}
        if self.align_head is not None and any(p.requires_grad
                                               for p in self.align_head.parameters()):
            losses['loss_align'] = self.align_loss(self.align_head(context),
                                                   self.clip_target(image, image_id))
        return losses

    @torch.no_grad()
    def predict(self, voxels: Tensor, image: Tensor | None = None, image_id=None,
                label=None, **_) -> list[dict]:
        """Per fMRI: ``pred`` (K, C, H, W) in [-1, 1] (K = num_samples), ``gt`` the stimulus,
        ``label``, ``image_id``."""
        cfg = self.sampling
        context, time_cond = self.condition(voxels)
        hint = self.hint(voxels)
        ids = image_id.tolist() if torch.is_tensor(image_id) else list(
            image_id if image_id is not None else range(len(voxels)))
        shape = self.to_latent(image[:1]).shape[1:] if image is not None else (
            self.unet.config.in_channels, self.unet.config.sample_size,
            self.unet.config.sample_size)
        b = len(voxels)
        samples = []
        for k in range(cfg['num_samples']):
            noise = FixedNoise.stack([
                FixedNoise.draw(tuple(shape), cfg['num_steps'],
                                cfg['seed'] + 1000 * int(i) + k) for i in ids]).to(voxels.device)
            samples.append(sample(lambda x, t: self.denoise(x, t, context, time_cond, hint),
                                  self.sample_scheduler, b, noise, cfg['num_steps'],
                                  cfg['eta']))
        preds = self.from_latent(torch.stack(samples, 1).flatten(0, 1)).clamp(-1, 1)
        preds = preds.view(b, cfg['num_samples'], *preds.shape[1:]).cpu()
        return [dict(pred=preds[i], gt=image[i].cpu() if image is not None else None,
                     label=int(label[i]) if label is not None else -1, image_id=int(ids[i]))
                for i in range(b)]
