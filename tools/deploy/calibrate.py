"""Calibrate a quantized config's steps on a float checkpoint and write a calibrated checkpoint
(post-training quantization, or the start of QAT).

    python tools/deploy/calibrate.py CONFIG FLOAT_CKPT [--out calibrated.pth] [--seed 0]
                                     [--cfg-options model.quant.calibration.method=percentile]
    python tools/test.py CONFIG calibrated.pth          # evaluates it, calibrating nothing
    python tools/train.py CONFIG --cfg-options load_from=calibrated.pth   # QAT from it

The config's quantizers must be set to be calibrated (``model.quant.calibration=dict(...)``);
they observe the first ``calibration.batches`` batches of the config's ``train_dataloader``,
built and augmented with the seed, as ``mmext.QuantCalibrationHook`` does inside a
single-process ``tools/train.py`` / ``tools/test.py`` with the same ``randomness.seed`` (under
DDP the hook observes that many batches of each process's shard).
The checkpoint holds the model's state (``state_dict``) and, in ``meta``, the float checkpoint,
the seed and the calibration report.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from mmengine.config import DictAction
from mmengine.runner import Runner
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

# the clone's root, so that configs can import projects.<method> (custom_imports)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmext.quant import calibrate_in_runner, step_quantizers  # noqa: E402
from mmext.utils import load_tool_config  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='a quantized config (mmext.QuantizedModel, mmext.QDETR, '
                        '...) whose model.quant sets calibration')
    parser.add_argument('checkpoint', help='the float checkpoint (or any checkpoint whose '
                        'quantizers have no step yet)')
    parser.add_argument('--out', type=Path, help='output checkpoint (default: '
                        '<work dir>/calibrated.pth)')
    parser.add_argument('--work-dir', help='work dir of the run (logs; default '
                        './work_dirs/<config name>)')
    parser.add_argument('--seed', type=int, help="seed of the calibration batches' order "
                        "(default: the config's randomness.seed, else 0)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_tool_config(args.config, args.cfg_options, args.work_dir)
    seed = args.seed if args.seed is not None else \
        (cfg.get('randomness') or {}).get('seed') or 0
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    cfg.load_from = None
    cfg.resume = False
    for key in ('train_cfg', 'val_cfg', 'test_cfg', 'param_scheduler', 'optim_wrapper'):
        cfg.pop(key, None)  # only the model and the training data are needed
    for key in ('val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator'):
        cfg.pop(key, None)
    # keep the train_dataloader config aside: the Runner would otherwise want a train loop
    train_loader = cfg.pop('train_dataloader', None)
    if not train_loader:
        raise ValueError(f'{args.config} has no train_dataloader to calibrate on')
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(args.checkpoint, map_location='cpu')
    quantizers = step_quantizers(runner.model)
    if not quantizers:
        raise ValueError(f'{args.config} builds no LSQ / LSQ+ quantizer (2..8 bits): nothing to '
                         'calibrate')
    if not any(q.calibration is not None for q in quantizers.values()):
        raise ValueError(f'the quantizers of {args.config} use the data-free LSQ initialisation '
                         "(model.quant.calibration is None); set it, e.g. --cfg-options "
                         "model.quant.calibration.method=mse, or in the config "
                         "quant=dict(..., calibration=dict(method='mse', batches=16))")
    report = calibrate_in_runner(runner, dataloader=train_loader)
    if report is None:
        raise ValueError(f'{args.checkpoint} already holds the steps of every quantizer (a '
                         'calibrated or trained checkpoint): there is nothing to calibrate')
    out = args.out or Path(runner.work_dir) / 'calibrated.pth'
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(float_checkpoint=str(args.checkpoint), config=args.config, seed=seed,
                calibration=report)
    # write next to the target, then move: an interrupted run leaves no half-written file
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix='.tmp', delete=False) as tmp:
        save_checkpoint(dict(meta=meta, state_dict=weights_to_cpu(runner.model.state_dict())),
                        tmp.name)
    os.replace(tmp.name, out)
    runner.logger.info(f'calibrated checkpoint written to {out}')


if __name__ == '__main__':
    main()
