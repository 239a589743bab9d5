"""MinD-Vis's fine-tuned checkpoint (``{'model_state_dict': ..., 'config': ..., 'state': ...}``)
in CMVDM's layout, for stage A's ``load_from``.

MinD-Vis keeps its LDM in the CompVis layout: the UNet under ``model.diffusion_model.`` (with
its time-condition branch ``time_embed_condtion.{0,1,2}``, spelled so), the fMRI encoder under
``cond_stage_model.mae.``, the token and width mappers under ``cond_stage_model.channel_mapper``
/ ``dim_mapper``, VQ-f4 under ``first_stage_model.``. The UNet goes through
:func:`mmext.diffusion.ldm_to_diffusers_unet`; the encoder and mappers are renamed; VQ-f4 is not
converted here (see the README).
"""
from __future__ import annotations

from torch import Tensor, nn

from mmext.diffusion import ldm_to_diffusers_unet

TIME_COND = 'model.diffusion_model.time_embed_condtion.'
RENAMES = (('cond_stage_model.mae.', 'encoder.'),
           ('cond_stage_model.channel_mapper.', 'conditioner.channel_mapper.'),
           ('cond_stage_model.dim_mapper.', 'conditioner.dim_mapper.'),
           (TIME_COND, 'conditioner.time_cond.'))
DROPPED = ('cond_stage_model.mae.mask_token', 'cond_stage_model.mae.pos_embed',
           'cond_stage_model.mae.decoder')


def mindvis_to_cmvdm(state_dict: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """``model`` (a ``CMVDM``) state-dict entries from MinD-Vis's ``model_state_dict``: the
    UNet, ``encoder.*`` and ``conditioner.*``; checked key by key and shape by shape against
    ``model`` so that a checkpoint of another subject (voxel count) or layout stops here."""
    pos = state_dict.get('cond_stage_model.mae.pos_embed')
    if pos is not None and pos.shape[1] - 1 != model.encoder.num_patches:
        patches = pos.shape[1] - 1
        raise ValueError(f'the checkpoint\'s fMRI encoder has {patches} patches '
                         f'({patches * model.encoder.patch_size} padded voxels); the config has '
                         f'num_voxels = {model.encoder.num_voxels}: set num_voxels and '
                         'num_patches to the checkpoint\'s subject')
    unet, leftovers = ldm_to_diffusers_unet(state_dict, model.unet)
    out = {f'unet.{k}': v for k, v in unet.items()}
    unexpected = [k for k in leftovers if not k.startswith(TIME_COND)]
    if unexpected:
        raise ValueError(f'the UNet of the checkpoint carries keys CMVDM has no place for: '
                         f'{unexpected[:4]}')
    for key, value in state_dict.items():
        if key.startswith(DROPPED):
            continue
        for old, new in RENAMES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
    ours = model.state_dict()
    wanted = [k for k in ours if k.startswith(('unet.', 'encoder.', 'conditioner.'))]
    missing = [k for k in wanted if k not in out]
    extra = [k for k in out if k not in ours]
    wrong = [k for k in out if k in ours and out[k].shape != ours[k].shape]
    if missing or extra or wrong:
        raise ValueError(
            'the MinD-Vis checkpoint does not fit the CMVDM config: '
            f'missing {missing[:3]}, unexpected {extra[:3]}, wrong shape '
            f'{[(k, tuple(out[k].shape), tuple(ours[k].shape)) for k in wrong[:3]]}. The '
            'voxel count (num_voxels, num_patches) and the UNet must be the checkpoint\'s')
    return out
