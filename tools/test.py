"""Test (evaluate) a checkpoint with the stock mmengine Runner, for mmdet, mmseg and mmpretrain.

    python tools/test.py CONFIG CHECKPOINT|none [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
                                           [--cfg-options k=v ...] [--launcher pytorch]

``--show-dir`` saves the predictions drawn on the images (each library's visualization hook);
for a config that lists ``mmext.TeacherStudentVisualizationHook`` (Q-DETR's), also the
student's detections beside the teacher's, under ``<show-dir>/teacher_vs_student``.
``--out`` dumps the raw predictions, e.g. for mmdet's analysis_tools/analyze_results.py.
"""
import argparse
import os
import sys
from pathlib import Path

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# the clone's root, so that configs can import projects.<method> (custom_imports)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmext  # noqa: F401  (registries, safe checkpoint loading)
from mmext.utils import (
    dump_predictions,
    finish_distributed,
    load_tool_config,
    prepare_distributed,
)
from mmext.utils.data_check import check_inputs


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and eval) a model with the stock runner')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help="checkpoint file, or 'none' to evaluate the model as "
                        'the config builds it (a zero-shot model that trains nothing)')
    parser.add_argument('--work-dir', help='the dir to save the file containing evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory where painted images will be saved; '
                        'relative paths are taken inside the work dir, as in mmdet')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg: Config, args) -> None:
    """Switch on the library's visualization hook; its option names differ per library."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise RuntimeError('--show / --show-dir need `default_hooks.visualization` in the config')
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmpretrain':
        hook['enable'] = True
        if args.show_dir:
            hook['out_dir'] = args.show_dir
    else:
        hook['draw'] = True
        if args.show_dir and scope == 'mmseg':
            cfg.visualizer['save_dir'] = args.show_dir
        elif args.show_dir:
            hook['test_out_dir'] = args.show_dir
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    for custom in cfg.get('custom_hooks', []):
        # a config that lists it (mmext.QDETR's): the student's detections beside its teacher's
        if args.show_dir and str(custom.get('type', '')).endswith(
                'TeacherStudentVisualizationHook'):
            custom['draw'] = True
            custom['out_dir'] = os.path.join(args.show_dir, 'teacher_vs_student')


def main():
    args = parse_args()
    if args.checkpoint != 'none' and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist (give \'none\' '
                                'to evaluate the model as built)')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {args.out}')
    cfg = load_tool_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = None if args.checkpoint == 'none' else args.checkpoint
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args)

    # test needs the test data; its checkpoint carries every weight (teachers included)
    try:
        check_inputs(cfg, args.config, loaders=('test_dataloader', ), checkpoints=False)
    except FileNotFoundError as error:
        raise SystemExit(f'error: {error}') from None
    prepare_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)

    if args.out is not None:
        dump_predictions(runner, cfg, args.out)
    runner.test()
    del runner   # its DDP wrapper holds the process group (see finish_distributed)
    finish_distributed()


if __name__ == '__main__':
    main()
