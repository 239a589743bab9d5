"""Export a trained quantized model (a config with ``mmext.QuantizedModel`` and its checkpoint)
to a safetensors file with integer / bit-packed weights and their scales, then check that the
file rebuilds the model with bit-identical outputs.

    python tools/deploy/export_quantized.py CONFIG CHECKPOINT [--out model.safetensors]

File layout: :mod:`mmext.quant.export`. Load it back in Python with
``mmext.quant.load_quantized(model, path)`` on the model the same config builds.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint

# the clone's root, so that configs can import projects.<method> (custom_imports)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmext.quant.export import export_quantized, load_quantized
from mmext.utils.dummy_inputs import input_channels, tensor_mode_inputs


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='a checkpoint of the quantized model (after QAT)')
    parser.add_argument('--out', type=Path,
                        help='output file (default: the checkpoint with .safetensors)')
    parser.add_argument('--force', action='store_true', help='replace an existing output file')
    parser.add_argument('--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help='input size of the exactness check')
    parser.add_argument('--channels', type=int,
                        help="input channels of the exactness check (default: those of the "
                             "model's first convolution)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def _tensor_forward(model, scope: str, shape, channels: int) -> torch.Tensor:
    """The model's raw outputs on a fixed random image ('tensor' mode), flattened."""
    args, kwargs = tensor_mode_inputs(scope, shape, torch.Generator().manual_seed(0), channels)
    out = model(*args, **kwargs)
    flat = [out] if isinstance(out, torch.Tensor) else \
        [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
    return torch.cat([t.flatten() for t in flat])


def main() -> None:
    args = parse_args()
    out = args.out or Path(args.checkpoint).with_suffix('.safetensors')
    if out.exists() and not args.force:
        raise SystemExit(f'{out} exists; pass --force to replace it, or --out another file')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope', 'mmext')
    init_default_scope(scope)

    def build():
        model = MODELS.build(copy.deepcopy(cfg.model))
        model.eval()
        return model

    model = build()
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    channels = args.channels or input_channels(model)
    # written beside the output and moved into place once checked: a failed check leaves no file
    partial = out.with_name(out.name + '.partial')
    try:
        records = export_quantized(model, partial)
        with torch.no_grad():
            try:
                expected = _tensor_forward(model, scope, args.shape, channels)
            except RuntimeError as exc:
                raise SystemExit(
                    f'the exactness check could not run the model on a random (1, {channels}, '
                    f'{args.shape[0]}, {args.shape[1]}) image: {str(exc).splitlines()[0]}. '
                    'Pass --shape H W and --channels C of the images the config tests on; '
                    'nothing was written') from exc
            rebuilt = _tensor_forward(load_quantized(build(), partial), scope, args.shape,
                                      channels)
        if not torch.equal(expected, rebuilt):
            raise SystemExit(f'the rebuilt model differs from the checkpoint by up to '
                             f'{(expected - rebuilt).abs().max():.3g}: the export is not exact; '
                             'nothing was written')
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    kinds = {}
    for r in records:
        kinds[f"{r['bits']}-bit"] = kinds.get(f"{r['bits']}-bit", 0) + 1
    size = out.stat().st_size
    print(f'exported {len(records)} quantized weights ({kinds}) to {out} ({size / 1e6:.2f} MB); '
          'rebuilt model: outputs identical to the checkpoint')


if __name__ == '__main__':
    main()
