"""Checkpoint layouts: CompVis latent diffusion (``ldm``, the layout of MinD-Vis and Stable
Diffusion 1.x checkpoints) and diffusers.

``ldm_to_diffusers_unet`` reads the UNet of an LDM checkpoint (keys ``model.diffusion_model.*``)
into a diffusers ``UNet2DConditionModel`` state dict with diffusers' own
converter, and checks the result against the model it is meant for, so that a checkpoint of
another layout or size stops with the keys that do not fit. ``diffusers_to_ldm_unet`` writes the
inverse (for export, and for the tests, which write CompVis-layout checkpoints).

The CompVis UNet numbers its blocks flat: ``input_blocks.0`` is ``conv_in``; level ``i`` holds
``layers_per_block`` blocks ``input_blocks.{i (L + 1) + j + 1}`` (``.0`` a resnet, ``.1`` an
attention) and a downsampler ``input_blocks.{(i + 1) (L + 1)}.0.op``; the middle block is
resnet, attention, resnet; the up path has ``L + 1`` blocks per level, the last of a level
carrying the upsampler after its resnet (and attention).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

LDM_UNET_PREFIX = 'model.diffusion_model.'

_RESNET_LDM_TO_DIFFUSERS = (('in_layers.0', 'norm1'), ('in_layers.2', 'conv1'),
                            ('out_layers.0', 'norm2'), ('out_layers.3', 'conv2'),
                            ('emb_layers.1', 'time_emb_proj'), ('skip_connection', 'conv_shortcut'))
_TOP_LEVEL = {'time_embedding.linear_1.': 'time_embed.0.', 'time_embedding.linear_2.': 'time_embed.2.',
              'conv_in.': 'input_blocks.0.0.', 'conv_norm_out.': 'out.0.', 'conv_out.': 'out.2.'}


def checkpoint_state_dict(checkpoint: Mapping) -> dict[str, Tensor]:
    """The flat state dict of a loaded checkpoint: the dict itself, or its ``state_dict``
    (CompVis, mmengine) or ``model_state_dict`` (MinD-Vis) entry."""
    for key in ('state_dict', 'model_state_dict'):
        if isinstance(checkpoint.get(key), Mapping):
            return dict(checkpoint[key])
    if not all(isinstance(v, Tensor) for v in checkpoint.values()):
        raise ValueError('the checkpoint holds neither a flat state dict nor a "state_dict" / '
                         f'"model_state_dict" entry (top-level keys: {sorted(checkpoint)[:8]})')
    return dict(checkpoint)


def _check_fits(converted: dict[str, Tensor], expected: Mapping[str, Tensor], what: str):
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = sorted(k for k in set(converted) & set(expected)
                   if tuple(converted[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        detail = '; '.join(
            f'{name} ({len(keys)}): {", ".join(keys[:4])}' + (' ...' if len(keys) > 4 else '')
            for name, keys in (('missing', missing), ('unexpected', unexpected),
                               ('wrong shape', [f'{k} {tuple(converted[k].shape)} vs '
                                                f'{tuple(expected[k].shape)}' for k in wrong]))
            if keys)
        raise ValueError(f'the {what} does not fit the model the config builds: {detail}. Check '
                         'that the checkpoint is the one the config names and that the UNet '
                         'config (channels, levels, layers_per_block, attention) matches it')


def ldm_to_diffusers_unet(state_dict: Mapping[str, Tensor], unet: torch.nn.Module,
                          prefix: str = LDM_UNET_PREFIX) -> tuple[dict[str, Tensor], list[str]]:
    """Convert the UNet of a CompVis-layout state dict for ``unet`` (a diffusers UNet whose
    config matches the checkpoint).

    Returns:
        ``(converted, leftovers)``: the diffusers state dict, checked key by key and shape by
        shape against ``unet``; and the keys under ``prefix`` that are not part of the standard
        UNet (a method's additions such as MinD-Vis's time-condition branch), for the caller.

    Raises:
        ValueError: no key under ``prefix`` (not an LDM checkpoint), or keys / shapes that do
            not fit ``unet``.
    """
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
    if not isinstance(unet, UNet2DConditionModel):
        raise TypeError(f'the CompVis UNet layout maps to diffusers UNet2DConditionModel '
                        f'(spatial transformers), not {type(unet).__name__}')
    ours = {k: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not ours:
        sample = ', '.join(sorted(state_dict)[:4])
        raise ValueError(f'no key starts with {prefix!r}: this is not a CompVis latent diffusion '
                         f'checkpoint (first keys: {sample}). Diffusers-layout weights load '
                         'with from_pretrained=<local folder>')
    expected = unet.state_dict()
    # diffusers' converter keys on the LDM prefix; give it ours under that name
    ldm = {LDM_UNET_PREFIX + k[len(prefix):]: v for k, v in ours.items()}
    converted = convert_ldm_unet_checkpoint(ldm, dict(unet.config))
    converted = {k: v for k, v in converted.items() if v is not None}
    standard = set(diffusers_to_ldm_unet({k: expected[k] for k in converted if k in expected},
                                         unet, prefix=''))
    leftovers = sorted(k for k in ours if k[len(prefix):] not in standard)
    _check_fits(converted, expected, 'UNet of the CompVis checkpoint')
    return converted, leftovers


def _ldm_unet_key_map(unet: torch.nn.Module) -> list[tuple[str, str]]:
    """``(diffusers prefix, ldm prefix)`` pairs for every block of ``unet``."""
    cfg = unet.config
    per_level = cfg['layers_per_block']
    per_level = per_level if isinstance(per_level, int) else per_level[0]
    pairs = list(_TOP_LEVEL.items())
    for i, block in enumerate(unet.down_blocks):
        for j in range(len(block.resnets)):
            pairs.append((f'down_blocks.{i}.resnets.{j}.', f'input_blocks.{i * (per_level + 1) + j + 1}.0.'))
            if getattr(block, 'attentions', None) is not None:
                pairs.append((f'down_blocks.{i}.attentions.{j}.',
                              f'input_blocks.{i * (per_level + 1) + j + 1}.1.'))
        if block.downsamplers is not None:
            pairs.append((f'down_blocks.{i}.downsamplers.0.conv.',
                          f'input_blocks.{(i + 1) * (per_level + 1)}.0.op.'))
    pairs += [('mid_block.resnets.0.', 'middle_block.0.'), ('mid_block.attentions.0.', 'middle_block.1.'),
              ('mid_block.resnets.1.', 'middle_block.2.')]
    for i, block in enumerate(unet.up_blocks):
        has_attention = getattr(block, 'attentions', None) is not None
        for j in range(len(block.resnets)):
            pairs.append((f'up_blocks.{i}.resnets.{j}.', f'output_blocks.{i * (per_level + 1) + j}.0.'))
            if has_attention:
                pairs.append((f'up_blocks.{i}.attentions.{j}.',
                              f'output_blocks.{i * (per_level + 1) + j}.1.'))
        if block.upsamplers is not None:
            last = i * (per_level + 1) + len(block.resnets) - 1
            pairs.append((f'up_blocks.{i}.upsamplers.0.conv.',
                          f'output_blocks.{last}.{2 if has_attention else 1}.conv.'))
    return pairs


def diffusers_to_ldm_unet(state_dict: Mapping[str, Tensor], unet: torch.nn.Module,
                          prefix: str = LDM_UNET_PREFIX) -> dict[str, Tensor]:
    """The inverse of :func:`ldm_to_diffusers_unet`: a state dict of ``unet`` (a diffusers
    ``UNet2DConditionModel``) in the CompVis layout, keys under ``prefix``."""
    pairs = sorted(_ldm_unet_key_map(unet), key=lambda p: -len(p[0]))  # longest prefix first
    out = {}
    for key, value in state_dict.items():
        new, old = next(((n, o) for n, o in pairs if key.startswith(n)), (None, None))
        if new is None:
            raise KeyError(f'{key!r} has no place in the CompVis UNet layout')
        rest = key[len(new):]
        if '.resnets.' in new:
            for ldm_name, diffusers_name in _RESNET_LDM_TO_DIFFUSERS:
                if rest.startswith(diffusers_name + '.'):
                    rest = ldm_name + rest[len(diffusers_name):]
                    break
        out[prefix + old + rest] = value
    return out


LDM_VQ_PREFIX = 'first_stage_model.'
_VAE_TOP = {'conv_norm_out.': 'norm_out.'}
_VAE_ATTENTION = (('group_norm.', 'norm.'), ('to_q.', 'q.'), ('to_k.', 'k.'), ('to_v.', 'v.'),
                  ('to_out.0.', 'proj_out.'))


def ldm_to_diffusers_vq(state_dict: Mapping[str, Tensor], vq: torch.nn.Module,
                        prefix: str = LDM_VQ_PREFIX) -> dict[str, Tensor]:
    """The first stage (VQ-f4 and other CompVis ``VQModel``s, keys ``first_stage_model.*``) for a
    diffusers ``VQModel`` through diffusers' VAE converter, plus the codebook
    (``quantize.embedding.weight``); checked against ``vq``."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    ours = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not ours:
        raise ValueError(f'no key starts with {prefix!r}: the checkpoint has no CompVis first '
                         'stage (VQ / KL autoencoder)')
    converted = convert_ldm_vae_checkpoint({'first_stage_model.' + k: v for k, v in ours.items()},
                                           dict(vq.config))
    for key in ('quantize.embedding.weight', ):
        if key in ours:
            converted[key] = ours[key]
    expected = vq.state_dict()
    _check_fits({k: v for k, v in converted.items() if v is not None}, expected,
                'first stage of the CompVis checkpoint')
    return converted


def diffusers_to_ldm_vq(state_dict: Mapping[str, Tensor], vq: torch.nn.Module,
                        prefix: str = LDM_VQ_PREFIX) -> dict[str, Tensor]:
    """The inverse of :func:`ldm_to_diffusers_vq` (attention projections back to 1x1 convs)."""
    ups = len(vq.decoder.up_blocks)
    out = {}
    for key, value in state_dict.items():
        name = key
        for new, old in _VAE_TOP.items():
            name = name.replace('.' + new, '.' + old)
        parts = name.split('.')
        if parts[1] == 'down_blocks':
            i, kind = parts[2], parts[3]
            rest = '.'.join(parts[4:])
            name = (f'{parts[0]}.down.{i}.block.{rest}' if kind == 'resnets' else
                    f'{parts[0]}.down.{i}.downsample.{".".join(parts[5:])}')
        elif parts[1] == 'up_blocks':
            i, kind = ups - 1 - int(parts[2]), parts[3]
            rest = '.'.join(parts[4:])
            name = (f'{parts[0]}.up.{i}.block.{rest}' if kind == 'resnets' else
                    f'{parts[0]}.up.{i}.upsample.{".".join(parts[5:])}')
        elif parts[1] == 'mid_block':
            if parts[2] == 'resnets':
                name = f'{parts[0]}.mid.block_{int(parts[3]) + 1}.{".".join(parts[4:])}'
            else:
                rest = '.'.join(parts[4:])
                for new, old in _VAE_ATTENTION:
                    if rest.startswith(new):
                        rest = old + rest[len(new):]
                        break
                name = f'{parts[0]}.mid.attn_1.{rest}'
                if value.ndim == 2:
                    value = value[:, :, None, None]
        name = name.replace('.conv_shortcut.', '.nin_shortcut.')
        out[prefix + name] = value
    return out
