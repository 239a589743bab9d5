"""Convert MinD-Vis's fine-tuned checkpoint (``finetuned.pth``) into the ``load_from`` file of a
CMVDM stage-A config::

    python tools/model_converters/mindvis_to_cmvdm.py pretrains/GOD/finetuned.pth \
        configs/cmvdm/cmvdm_ldm_stage-a_god-sbj3.py checkpoints/mind-vis/cmvdm_init_god-sbj3.pth

The config's model is built without its VQ and CLIP (not needed to name the keys). The
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
    parser.add_argument('--force', action='store_true', help='replace an existing output')
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SystemExit(f'{out} exists: pass --force to replace it')
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f'no checkpoint at {args.checkpoint}')
    from mmengine.config import Config

    import projects.cmvdm  # noqa: F401
    from mmext.diffusion import checkpoint_state_dict
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


if __name__ == '__main__':
    main()
