"""Evaluate an exported low-bit model on mmext's integer and bit-packed kernels, with the
config's own test loop and metrics (as ``tools/test.py`` does for a checkpoint).

    python tools/deploy/export_quantized.py CONFIG CHECKPOINT --out model.safetensors
    python tools/deploy/test_runtime.py CONFIG model.safetensors [--work-dir DIR]
                                        [--out results.pkl] [--reference] [--keep-batch-norm]
                                        [--cfg-options k=v ...]

The config builds the quantized model; :func:`mmext.quant.build_runtime_model` fills it from
the export and swaps the layers a kernel computes exactly (the others stay fake-quantized; the
log lists them and why). ``--reference`` runs the kernels' pure-torch reference instead.
"""
import argparse
import sys
from pathlib import Path

from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# the clone's root, so that configs can import projects.<method> (custom_imports)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mmext  # noqa: F401,E402  (registries)
from mmext.quant.runtime import (  # noqa: E402
    INT8_BACKENDS,
    IntConv2d,
    IntLinear,
    build_runtime_model,
)
from mmext.utils import dump_predictions, load_tool_config  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the config the export was made from')
    parser.add_argument('export', help='a file written by tools/deploy/export_quantized.py')
    parser.add_argument('--work-dir', help='where the log and metrics go')
    parser.add_argument('--out', help='dump predictions to a pickle file (as tools/test.py)')
    parser.add_argument('--reference', action='store_true',
                        help='the pure-torch reference instead of the compiled kernels')
    parser.add_argument('--int8-backend', choices=INT8_BACKENDS, default='auto',
                        help="the integer layers' GEMM: 'auto' runs oneDNN's int8 linear on "
                             f"linear layers of >= {IntLinear.ONEDNN_MIN_OUT} outputs on a CPU "
                             "with AMX-INT8, and oneDNN's int8 convolution on grouped "
                             "convolutions and on those of at most "
                             f"{IntConv2d.ONEDNN_MAX_OUT} outputs that need an im2col (dilation "
                             "1, equal strides, at most (k - 1) // 2 padding), where its "
                             "sums are exact; torch._int_mm (a grouped convolution: float32) "
                             "elsewhere; 'int_mm' and 'onednn' force one ('onednn' is an error "
                             "where it cannot be exact); the outputs are the same")
    parser.add_argument('--keep-batch-norm', action='store_true',
                        help='run each BatchNorm after a kernel convolution as a layer of its '
                             'own instead of folding it into the convolution\'s scale and bias '
                             '(the same values up to float rounding)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    return parser.parse_args()


def main():
    args = parse_args()
    if not Path(args.export).is_file():
        raise FileNotFoundError(f'export {args.export} does not exist; write it with '
                                'tools/deploy/export_quantized.py CONFIG CHECKPOINT --out FILE')
    cfg = load_tool_config(args.config, args.cfg_options, args.work_dir, 'none')
    cfg.load_from = None          # the export carries every weight
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.model.cpu()            # the kernels run on the CPU (mmengine moved it to a GPU if any)
    _, report = build_runtime_model(runner.model, args.export, use_kernel=not args.reference,
                                    int8_backend=args.int8_backend,
                                    fold_batch_norm=not args.keep_batch_norm)
    print_log(f'low-bit runtime: {report.counts()} quantized layers', logger='current')
    if report.gemms:
        print_log(f'  integer sums computed by: {report.gemms}', logger='current')
    if report.folded:
        print_log(f'  BatchNorms folded into the convolution before them: {len(report.folded)}',
                  logger='current')
    if report.chains:
        print_log(f'  integer layers handing the next their int8 levels: {len(report.chains)}',
                  logger='current')
    for name, why in report.kept():
        print_log(f'  kept fake-quantized: {name} ({why})', logger='current')
    for name, fused, why in report.pairs:
        print_log(f'  binary pair at {name}: ' + ('the first layer gives the second its signs'
                                                   if fused else f'not fused ({why})'),
                  logger='current')
    if args.out is not None:
        dump_predictions(runner, cfg, args.out)
    runner.test()


if __name__ == '__main__':
    main()
