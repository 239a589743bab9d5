"""Train with the stock mmengine Runner; works for mmdet, mmseg and mmpretrain configs alike.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--overwrite] [--amp]
                                 [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch]

The options are mmdet's. The config's ``default_scope`` picks the library; mmext components are
named ``mmext.Name``. A config's ``env_cfg.malloc_cfg`` fixes glibc malloc's thresholds
before the runner is built (``mmext/utils/malloc.py``). ``tools/dist_train.sh CONFIG N`` runs N
processes (gloo without a GPU).
"""
import argparse
import os
import sys
from pathlib import Path

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# the clone's root, so that configs can import projects.<method> (custom_imports)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmext  # noqa: F401  (registries, safe checkpoint loading)
from mmext.utils import finish_distributed, load_tool_config, prepare_distributed
from mmext.utils.data_check import check_inputs
from mmext.utils.malloc import configure_malloc, malloc_cfg_from


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model with the stock runner')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='enable automatically scaling LR')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or without a value from the latest checkpoint '
        'in the work dir')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='start a new run in a work dir that holds checkpoints of an earlier one (they are '
        'overwritten as the new run saves its own); without it such a start is refused')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_dataloader.batch_size=2 model.backbone.init_cfg=None')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = load_tool_config(args.config, args.cfg_options, args.work_dir, args.launcher)

    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr = dict(enable=..., '
                               'base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    last = Path(cfg.work_dir) / 'last_checkpoint'
    if args.resume is None and not cfg.get('resume') and last.is_file():
        if not args.overwrite:
            raise SystemExit(f'{cfg.work_dir} holds the checkpoints of an earlier run (the last:'
                             f' {last.read_text().strip()}). Pass --resume to continue it, '
                             '--overwrite to start again over it, or choose another --work-dir.')
        last.unlink(missing_ok=True)  # a kill before the first save must not resume the earlier run
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    try:
        check_inputs(cfg, args.config, loaders=('train_dataloader', 'val_dataloader'))
    except FileNotFoundError as error:
        raise SystemExit(f'error: {error}') from None
    prepare_distributed(cfg, args.launcher)
    malloc_cfg = malloc_cfg_from(cfg.get('env_cfg'))
    if malloc_cfg and configure_malloc(**malloc_cfg):  # before the runner allocates
        print(f"glibc malloc: mmap_threshold {malloc_cfg['mmap_threshold']} B, trim_threshold "
              f"{malloc_cfg['trim_threshold']} B (env_cfg.malloc_cfg, mmext/utils/malloc.py)")
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    del runner   # its DDP wrapper holds the process group (see finish_distributed)
    finish_distributed()


if __name__ == '__main__':
    main()
