"""Convert MinD-Vis's fine-tuned checkpoint (``finetuned.pth``) into the ``load_from`` file of a
CMVDM stage-A config::

    python tools/model_converters/mindvis_to_cmvdm.py pretrains/GOD/finetuned.pth \
        configs/cmvdm/cmvdm_ldm_stage-a_god-sbj3.py checkpoints/mind-vis/cmvdm_init_god-sbj3.pth \
        --vq-out checkpoints/mind-vis/vqvae

``--vq-out`` also writes the first stage (VQ-f4) as a diffusers ``VQModel`` folder, built from
the config's ``vq_f4`` dict, where the config's ``model.vae`` reads it. The config's model is built without its VQ and CLIP (not needed to name the keys). The
checkpoint's ``config`` entry is a pickled MinD-Vis class: the file is read with
``weights_only=False``, so convert only files you trust. An existing output is kept unless
``--force``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint')
    parser.add_argument('config')
    parser.add_argument('out')
    parser.add_argument('--vq-out', help='folder for the first stage as a diffusers VQModel')
    parser.add_argument('--force', action='store_true', help='replace existing outputs')
    args = parser.parse_args(argv)
    out = Path(args.out)
    for existing in (out, Path(args.vq_out) if args.vq_out else None):
        if existing is not None and existing.exists() and not args.force:
            raise SystemExit(f'{existing} exists: pass --force to replace it')
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f'no checkpoint at {args.checkpoint}')
    from mmengine.config import Config

    import projects.cmvdm  # noqa: F401
    from mmext.diffusion import checkpoint_state_dict, ldm_to_diffusers_vq
    from mmext.registry import MODELS
    from projects.cmvdm.convert import mindvis_to_cmvdm
    cfg = Config.fromfile(args.config)
    model_cfg = dict(cfg.model)
    for part in ('vae', 'clip', 'align_head', 'silhouette', 'silhouette_checkpoint'):
        model_cfg.pop(part, None)
    model = MODELS.build(model_cfg)
    loaded = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
    converted = mindvis_to_cmvdm(checkpoint_state_dict(loaded), model)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': converted, 'meta': {'converted_from': str(args.checkpoint)}}, out)
    print(f'wrote {out}: {len(converted)} tensors (UNet, fMRI encoder, conditioner)')
    if args.vq_out:
        from diffusers import VQModel
        if 'vq_f4' not in cfg:
            raise SystemExit(f'{args.config} has no vq_f4 dict (the VQModel config)')
        vq = VQModel.from_config(dict(cfg.vq_f4))
        state = checkpoint_state_dict(loaded)
        vq.load_state_dict(ldm_to_diffusers_vq(state, vq))
        vq.save_pretrained(args.vq_out)
        print(f'wrote {args.vq_out} (VQModel)')


if __name__ == '__main__':
    main()
