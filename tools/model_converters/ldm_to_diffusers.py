"""Convert the UNet of a CompVis latent-diffusion checkpoint (MinD-Vis, LDM, Stable Diffusion
1.x: keys ``model.diffusion_model.*``) into a diffusers folder that configs load with
``from_pretrained``::

    python tools/model_converters/ldm_to_diffusers.py CKPT UNET_CONFIG OUT_DIR

``UNET_CONFIG`` describes the UNet the checkpoint holds: a diffusers ``config.json``, or an
mmext config file whose ``--key`` (default ``model.unet``) is a ``type='mmext.Diffusers'``
dict with ``from_config``. Writes ``OUT_DIR/unet`` (``save_pretrained``) and, when the
checkpoint's UNet carries keys of its own (a method's additions), ``OUT_DIR/unet_leftovers.pth``
with them in the CompVis naming. An existing ``OUT_DIR/unet`` is kept unless ``--force``. The
checkpoint is read with ``weights_only=False`` (these files pickle config objects): convert
only files you trust.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmext.diffusion import checkpoint_state_dict, ldm_to_diffusers_unet  # noqa: E402


def unet_config(path: str, key: str) -> dict:
    if path.endswith('.json'):
        return json.loads(Path(path).read_text())
    from mmengine.config import Config
    node = Config.fromfile(path)
    for part in key.split('.'):
        if part not in node:
            raise KeyError(f'{path} has no {key!r}: give --key, the dotted path of the '
                           "type='mmext.Diffusers' dict of the UNet")
        node = node[part]
    if 'from_config' not in node:
        raise ValueError(f'{key} in {path} has no from_config: the converter needs the UNet '
                         'architecture, not a folder to load')
    return dict(node['from_config'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint')
    parser.add_argument('unet_config', help='diffusers config.json or an mmext config file')
    parser.add_argument('out_dir')
    parser.add_argument('--key', default='model.unet',
                        help='where the UNet dict sits in an mmext config')
    parser.add_argument('--prefix', default='model.diffusion_model.')
    parser.add_argument('--force', action='store_true', help='replace an existing OUT_DIR/unet')
    args = parser.parse_args(argv)

    from diffusers import UNet2DConditionModel
    out = Path(args.out_dir)
    if (out / 'unet').exists() and not args.force:
        raise SystemExit(f'{out / "unet"} exists: pass --force to replace it')
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f'no checkpoint at {args.checkpoint}')
    config = {k: v for k, v in unet_config(args.unet_config, args.key).items()
              if not k.startswith('_')}
    unet = UNet2DConditionModel.from_config(config)
    # CompVis and MinD-Vis checkpoints pickle config objects beside the weights
    state = checkpoint_state_dict(torch.load(args.checkpoint, map_location='cpu',
                                             weights_only=False))
    converted, leftovers = ldm_to_diffusers_unet(state, unet, prefix=args.prefix)
    unet.load_state_dict(converted)
    unet.save_pretrained(out / 'unet')
    print(f'wrote {out / "unet"} ({len(converted)} tensors)')
    if leftovers:
        torch.save({k: state[k] for k in leftovers}, out / 'unet_leftovers.pth')
        print(f'{len(leftovers)} keys outside the standard UNet kept in '
              f'{out / "unet_leftovers.pth"}: {", ".join(leftovers[:6])}')


if __name__ == '__main__':
    main()
