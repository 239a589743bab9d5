"""The fMRI side of CMVDM (spec 10.2, inherited from MinD-Vis): a 1-D masked autoencoder over
16-voxel patches, and the conditioner that maps its tokens to the diffusion UNet's
cross-attention context and time condition."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from mmengine.model import BaseModel, BaseModule
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from mmext.registry import MODELS


def sincos_positions(length: int, dim: int) -> Tensor:
    """(length, dim) fixed 1-D sine-cosine positions (MAE's table, from diffusers)."""
    import numpy as np
    from diffusers.models.embeddings import get_1d_sincos_pos_embed_from_grid
    if dim % 2:
        raise ValueError(f'the embedding dimension must be even, got {dim}')
    return torch.from_numpy(
        get_1d_sincos_pos_embed_from_grid(dim, np.arange(length, dtype=np.float64))).float()


@MODELS.register_module()
class FMRIMAEEncoder(BaseModule):
    """Voxels (B, V) -> tokens (B, V / patch_size, embed_dim).

    A Conv1d of kernel and stride ``patch_size`` embeds each patch of voxels; fixed sine-cosine
    positions (a slot for an unused class token first, as MinD-Vis keeps one); transformer
    blocks (timm's, pre-norm, MLP ratio ``mlp_ratio``, LayerNorm with torch's default eps, as
    MinD-Vis); LayerNorm. Module names follow
    MinD-Vis's ``MAEforFMRI`` so its checkpoints load (:meth:`load_mindvis`).

    Args:
        num_voxels: V, a multiple of ``patch_size`` (pad with ``mmext.VoxelPad``).
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=..., prefix='encoder.')`` for the
            encoder of an ``FMRIMaskedPretrainer`` run.
    """

    def __init__(self, num_voxels: int, patch_size: int = 16, embed_dim: int = 1024,
                 depth: int = 24, num_heads: int = 16, mlp_ratio: float = 1.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_voxels % patch_size:
            raise ValueError(f'num_voxels = {num_voxels} is not a multiple of patch_size = '
                             f'{patch_size}: pad the voxels (mmext.VoxelPad) and set num_voxels '
                             f'to the padded count {num_voxels + (-num_voxels) % patch_size}')
        self.num_voxels, self.patch_size = num_voxels, patch_size
        self.num_patches = num_voxels // patch_size
        self.embed_dim = embed_dim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv1d(1, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # MinD-Vis's layout: a zero row for the (unused) class token, then patch j at position j
        positions = torch.cat([torch.zeros(1, embed_dim),
                               sincos_positions(self.num_patches, embed_dim)])
        self.register_buffer('pos_embed', positions[None], persistent=False)
        norm = nn.LayerNorm
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True,
                                          norm_layer=norm) for _ in range(depth))
        self.norm = norm(embed_dim)
        nn.init.normal_(self.cls_token, std=0.02)

    def embed(self, voxels: Tensor) -> Tensor:
        if voxels.ndim != 2 or voxels.shape[1] != self.num_voxels:
            raise ValueError(f'voxels of shape {tuple(voxels.shape)}; the encoder takes '
                             f'(B, {self.num_voxels}): check num_voxels in the config against '
                             'the data (after VoxelPad)')
        x = self.patch_embed.proj(voxels[:, None]).transpose(1, 2)       # (B, L, D)
        return x + self.pos_embed[:, 1:]

    def run_blocks(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, voxels: Tensor) -> Tensor:
        return self.run_blocks(self.embed(voxels))

    def load_mindvis(self, path: str | Path) -> list[str]:
        """Load a MinD-Vis pretrained encoder (``{'model': state_dict, ...}``; the decoder and
        mask token are dropped, ``pos_embed`` is fixed here and not read). Returns the keys of
        the file that were not used. The file holds a pickled MinD-Vis config object, so it is
        read with ``weights_only=False``: load only files you trust."""
        state = torch.load(path, map_location='cpu', weights_only=False)
        state = state.get('model', state)
        if not isinstance(state, dict) or 'patch_embed.proj.weight' not in state:
            raise ValueError(f'{path} is not a MinD-Vis fMRI MAE checkpoint (no '
                             "'model' with 'patch_embed.proj.weight')")
        ours = {k: v for k, v in state.items() if k in self.state_dict()}
        wrong = [k for k, v in ours.items() if v.shape != self.state_dict()[k].shape]
        if wrong:
            raise ValueError(f'{path} does not fit this encoder ({wrong[0]}: '
                             f'{tuple(ours[wrong[0]].shape)} vs '
                             f'{tuple(self.state_dict()[wrong[0]].shape)}): embed_dim, depth '
                             'and num_heads must match the checkpoint')
        missing = set(self.state_dict()) - set(ours)
        if missing:
            raise ValueError(f'{path} lacks {len(missing)} encoder keys, e.g. '
                             f'{sorted(missing)[:3]}')
        self.load_state_dict(ours)
        return sorted(set(state) - set(ours))


@MODELS.register_module()
class FMRIMaskedPretrainer(BaseModel):
    """Masked pretraining of :class:`FMRIMAEEncoder` (spec 10.2): keep a random ``1 - mask_ratio``
    of the patches, encode them, decode all positions with a light transformer (mask tokens at
    the dropped ones) and regress the dropped patches' voxels (MSE on masked patches only).

    ``forward(voxels, mode='loss')`` takes the batch of ``PackFMRIInputs`` (other keys ignored).
    """

    def __init__(self, encoder: dict, decoder_dim: int = 128, decoder_depth: int = 2,
                 decoder_heads: int = 4, mask_ratio: float = 0.75,
                 data_preprocessor: dict | None = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0 < mask_ratio < 1:
            raise ValueError(f'mask_ratio must be in (0, 1), got {mask_ratio}')
        self.encoder = MODELS.build(encoder)
        self.mask_ratio = mask_ratio
        enc = self.encoder
        self.decoder_embed = nn.Linear(enc.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer('decoder_pos', sincos_positions(enc.num_patches, decoder_dim)[None],
                             persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_heads, 1.0, qkv_bias=True,
                  norm_layer=partial(nn.LayerNorm, eps=1e-6)) for _ in range(decoder_depth))
        self.decoder_pred = nn.Linear(decoder_dim, enc.patch_size)
        nn.init.normal_(self.mask_token, std=0.02)

    def reconstruct(self, voxels: Tensor, generator: torch.Generator | None = None):
        """-> (predicted patches (B, L, p), target patches (B, L, p), mask (B, L), 1 = hidden)."""
        enc = self.encoder
        tokens = enc.embed(voxels)
        b, length, _ = tokens.shape
        keep = max(1, int(round(length * (1 - self.mask_ratio))))
        order = torch.rand(b, length, generator=generator).to(voxels.device).argsort(1)
        kept = order[:, :keep]
        x = enc.run_blocks(torch.gather(tokens, 1, kept[..., None].expand(-1, -1, enc.embed_dim)))
        x = self.decoder_embed(x)
        full = self.mask_token.expand(b, length, -1).clone()
        full.scatter_(1, kept[..., None].expand(-1, -1, x.shape[-1]), x)
        full = full + self.decoder_pos
        for block in self.decoder_blocks:
            full = block(full)
        pred = self.decoder_pred(full)
        mask = torch.ones(b, length, device=voxels.device)
        mask.scatter_(1, kept, 0)
        return pred, voxels.view(b, length, enc.patch_size), mask

    def forward(self, voxels: Tensor, mode: str = 'loss', **_):
        pred, target, mask = self.reconstruct(voxels)
        error = ((pred - target) ** 2).mean(-1)
        loss = (error * mask).sum() / mask.sum()
        if mode == 'loss':
            return {'loss_mae': loss}
        return [dict(loss_mae=float(loss))]


@MODELS.register_module()
class FMRIConditioner(nn.Module):
    """Tokens (B, L, D) -> cross-attention context (B, context_tokens, context_dim) and a time
    condition (B, time_embed_dim) added to the UNet's timestep embedding (spec 10.2).

    ``channel_mapper``: Conv1d over the token axis L -> L/2 -> context_tokens; ``dim_mapper``:
    Linear D -> context_dim; ``time_cond``: Conv1d context_tokens -> context_tokens/2 -> 1, then
    Linear context_dim -> time_embed_dim (MinD-Vis's ``time_embed_condtion``, which it keeps in
    its UNet; the diffusers UNet takes it as ``class_labels`` with ``class_embed_type='identity'``).
    """

    def __init__(self, num_tokens: int, embed_dim: int, context_tokens: int = 77,
                 context_dim: int = 512, time_embed_dim: int | None = None):
        super().__init__()
        half = max(1, num_tokens // 2)
        self.channel_mapper = nn.Sequential(nn.Conv1d(num_tokens, half, 1),
                                            nn.Conv1d(half, context_tokens, 1))
        self.dim_mapper = nn.Linear(embed_dim, context_dim)
        self.time_cond = None
        if time_embed_dim:
            self.time_cond = nn.Sequential(nn.Conv1d(context_tokens, context_tokens // 2, 1),
                                           nn.Conv1d(context_tokens // 2, 1, 1),
                                           nn.Linear(context_dim, time_embed_dim))

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor | None]:
        context = self.dim_mapper(self.channel_mapper(tokens))
        time = self.time_cond(context)[:, 0] if self.time_cond is not None else None
        return context, time


