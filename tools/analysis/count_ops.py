"""Theoretical acceleration of a (quantized) model config: MACs per module, FLOPs, BOPs, OPs,
parameters and their size in bits, against the same model in full precision.

    python tools/analysis/count_ops.py configs/quant/detr_r50_w4a4-attn8_8xb2-150e_coco.py
    python tools/analysis/count_ops.py CONFIG --shape 224 224 --convention linear32 --out ops.json

Conventions: FLOPs count 1 per full-precision MAC (fvcore's unit);
a low-bit MAC with b_w-bit and b_a-bit operands is b_w * b_a BOPs. OPs = FLOPs + BOPs / 64 under
``bireal64`` (Bi-Real Net's rule, W4A4 at most 4x), or FLOPs + sum(max(b_w, b_a) / 32 * MACs)
under ``linear32`` (W4A4 at most 8x). Both are printed; ``--convention`` picks the per-module
column. Attention's two matmuls (q k^T, P v) count with their operand widths; softmax,
normalisation, activations and additions are not counted (as in fvcore).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope

# the clone's root, so that configs can import projects.<method> (custom_imports)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmext.quant import (
    CONVENTIONS,
    count_macs,
    format_ops_table,
    parameter_bits,
    summarize_ops,
)
from mmext.utils.dummy_inputs import input_channels, tensor_mode_inputs

DEFAULT_SHAPES = {'mmdet': (800, 1333), 'mmseg': (512, 1024), 'mmpretrain': (224, 224)}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file of a quantized (or float) model')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: 800 1333 for mmdet, 512 1024 '
                        'for mmseg, 224 224 for mmpretrain)')
    parser.add_argument('--channels', type=int,
                        help="input channels (default: those of the model's first convolution)")
    parser.add_argument('--convention', choices=CONVENTIONS, default='bireal64',
                        help='OPs rule of the per-module table (both rules are in the totals)')
    parser.add_argument('--quiet', action='store_true', help='totals only')
    parser.add_argument('--out', type=Path, help='also write the results as JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    return parser.parse_args()


FLOAT_MODEL_KEYS = {'QuantizedModel': 'model', 'QDETR': 'detector', 'BiViT': 'classifier',
                    'DistilledClassifier': 'classifier',
                    'DistilledClassifierWithReconstruction': 'classifier'}


def _float_model_cfg(model_cfg: dict) -> dict | None:
    """The float twin of a quantized model config: the model inside ``mmext.QuantizedModel``
    (``model``), ``mmext.QDETR`` (``detector``), ``mmext.BiViT`` or the distillers
    (``classifier``), with a binary backbone (``binary=True``, DCP-NAS's cells) made
    real-valued; None if the config is float."""
    key = FLOAT_MODEL_KEYS.get(str(model_cfg.get('type', '')).split('.')[-1])
    float_cfg = copy.deepcopy(model_cfg[key]) if key else copy.deepcopy(model_cfg)
    backbone = float_cfg.get('backbone')
    if isinstance(backbone, dict) and backbone.get('binary'):
        backbone['binary'] = False
        return float_cfg
    return float_cfg if key else None


def _build(model_cfg) -> torch.nn.Module:
    model = MODELS.build(copy.deepcopy(model_cfg))  # some heads edit their config in place
    model.eval()  # (mmpretrain's train() returns None: no chaining)
    return model


def count(model_cfg, scope: str, shape: tuple[int, int], channels: int | None = None) -> dict:
    """The model's MACs per module on one random image of ``shape`` with ``channels`` (default:
    those of the model's first convolution), its parameters and their bits."""
    model = _build(model_cfg)
    args, kwargs = tensor_mode_inputs(scope, shape, channels=channels or input_channels(model))
    records = count_macs(model, *args, **kwargs)
    params, bits = parameter_bits(model)
    return dict(records=records, params=params, size_bits=bits,
                **{c: summarize_ops(records, c) for c in CONVENTIONS})


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope')
    if scope is None:
        raise ValueError(f'{args.config} sets no default_scope; count_ops.py needs it to know '
                         'which library builds the model (mmdet, mmseg or mmpretrain)')
    init_default_scope(scope)
    MMLogger.get_current_instance().setLevel('WARNING')  # the swap's table: see train logs
    shape = tuple(args.shape) if args.shape else DEFAULT_SHAPES.get(scope, (224, 224))
    for key in ('backbone', *FLOAT_MODEL_KEYS.values()):  # no pretrained download
        sub = cfg.model.get(key) or {}
        if isinstance(sub, dict) and 'init_cfg' in sub:
            sub['init_cfg'] = None
    float_cfg = _float_model_cfg(cfg.model)
    if float_cfg is not None and isinstance(float_cfg.get('backbone'), dict):
        float_cfg['backbone']['init_cfg'] = None

    ours = count(cfg.model, scope, shape, args.channels)
    base = count(float_cfg, scope, shape, args.channels) if float_cfg is not None else ours
    if not args.quiet:
        print(format_ops_table(ours['records'], args.convention))
    result = dict(config=args.config, input_shape=list(shape), params=ours['params'],
                  size_bits=ours['size_bits'], float_size_bits=base['size_bits'],
                  float_flops=base['bireal64']['flops'], conventions={})
    print(f'\n{args.config} at input {shape[0]} x {shape[1]}')
    print(f"parameters {ours['params'] / 1e6:.2f} M; size {ours['size_bits'] / 8e6:.2f} MB "
          f"({ours['size_bits'] / 1e6:.1f} Mbit) vs {base['size_bits'] / 8e6:.2f} MB float: "
          f"{base['size_bits'] / ours['size_bits']:.2f}x smaller")
    print(f"float model: {base['bireal64']['flops'] / 1e9:.3f} GFLOPs (1 per MAC)")
    for convention in CONVENTIONS:
        totals = ours[convention]
        speedup = base[convention]['flops'] / totals['ops']
        result['conventions'][convention] = dict(
            flops=totals['flops'], bops=totals['bops'], ops=totals['ops'],
            acceleration=round(speedup, 3))
        print(f"{convention:>9}: FLOPs {totals['flops'] / 1e9:.3f} G + BOPs "
              f"{totals['bops'] / 1e9:.2f} G -> OPs {totals['ops'] / 1e9:.3f} G; theoretical "
              f'acceleration {speedup:.2f}x')
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result['modules'] = [dict(name=r.name, op=r.op, macs=r.macs, w_bits=r.w_bits,
                                  a_bits=r.a_bits) for r in ours['records']]
        args.out.write_text(json.dumps(result, indent=2) + '\n')
        print(f'written {args.out}')


if __name__ == '__main__':
    main()
