"""Post-training quantization and QAT from calibrated starts, on the demo detector and on the
Fashion-MNIST ViT of the Bi-ViT miniature.

    python benchmarks/ptq_qat.py --parts float ptq                  # detector: float, PTQ grid
    python benchmarks/ptq_qat.py --parts qat --seeds 0 1 2 --iters 120 1600
    python benchmarks/ptq_qat.py --parts vit-float vit-ptq vit-qat --seeds 0 1 2

Parts (each run goes through the stock tools and is kept in
``benchmarks/results/ptq_qat.json``; a run already there is skipped unless ``--force``):

- ``float``: the float demo detector per seed (tools/train.py on
  ``configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py``, 1,600
  iterations), evaluated by its final validation (COCO bbox mAP on the 500 val canvases).
- ``ptq``: tools/test.py of the quantized detector (the Q-DETR embedded config without DA and
  teacher: the first convolution float, the box / class heads 8-bit, inputs per channel) on a
  float checkpoint at W8A8, W6A6 and W4A4 (attention 8-bit), its steps from LSQ's data
  initialisation (``calibration=None``: weights ``2 mean|w| / sqrt(Qp)``, inputs from the first
  test batch) or calibrated on 16 training batches: 'minmax', 'percentile' or 'mse' for inputs
  and weights alike, 'mse-pct' (MSE inputs, 99.99th-percentile weights: the configs' choice),
  and 'mse-pct-tensor' (the same with per-tensor inputs).
- ``qat``: the 4-bit LSQ baseline (4-4-8) trained from its float detector (same seed) for each
  of ``--iters``, from each of ``--starts`` (default: the configs' calibration).
- ``float-more``: the float detector trained ``--iters`` more iterations with the QAT rows'
  optimizer and schedule, unquantized: what the extra training alone gives.
- ``vit-float``, ``vit-ptq``, ``vit-qat``: the same for the miniature ViT (its float model
  trained 10 epochs on the first 15,000 training images, seed 0; top-1 on the 10,000 test
  images), QAT for ``--vit-epochs``.

The markdown table beside the results file is rewritten after every run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ablation_runs import REPO, ResultsFile, final_metrics, learning_curve, mean_spread, train

from mmext.utils.schedule import iter_schedule_options

FLOAT_CONFIG = 'configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'
QUANT_CONFIG = 'configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py'
VIT_FLOAT = 'configs/bivit/vit-mini-p4_1xb128-10e_fashion-mnist.py'
VIT_QUANT = 'configs/quant/vit-mini-p4_w4a4-attn8_1xb128-3e_fashion-mnist.py'
RESULTS = Path(__file__).parent / 'results/ptq_qat.json'
TABLE = Path(__file__).parent / 'results/ptq_qat.md'
DET = {'mAP': 'coco/bbox_mAP', 'AP50': 'coco/bbox_mAP_50'}
CLS = {'top1': 'accuracy/top1'}
BASELINE = ['model.distribution_alignment=None', 'model.teacher=None']
CURVE_EVERY = 400  # longer QAT runs validate this often (the learning curve)
VIT_SUBSET = 15000
INITS = {  # name: --cfg-options of the quantizers' start (inputs / weights)
    'lsq': ['model.quant.calibration=None'],
    'minmax': ['model.quant.calibration.method=minmax',
               'model.quant.calibration.weight_method=minmax'],
    'percentile': ['model.quant.calibration.method=percentile',
                   'model.quant.calibration.weight_method=percentile'],
    'mse': ['model.quant.calibration.method=mse', 'model.quant.calibration.weight_method=mse'],
    'mse-pct': ['model.quant.calibration.method=mse',
                'model.quant.calibration.weight_method=percentile'],
    'mse-pct-tensor': ['model.quant.calibration.method=mse',
                       'model.quant.calibration.weight_method=percentile',
                       'model.quant.a_granularity=tensor'],
}
INIT_NAMES = {'lsq': 'LSQ data init (before this change)', 'minmax': 'min-max',
              'percentile': 'percentile 99.99', 'mse': 'MSE',
              'mse-pct': 'MSE inputs, percentile weights (the configs)',
              'mse-pct-tensor': 'the same, per-tensor inputs'}


def bits_options(bits: int) -> list[str]:
    return [f'model.quant.w_bits={bits}', f'model.quant.a_bits={bits}']


def test(config: str, checkpoint: str, work_dir: Path, options: list[str], keys: dict,
         label: str) -> dict:
    """tools/test.py; the metrics ``keys`` of its results json, and its minutes."""
    start = time.time()
    cmd = [sys.executable, 'tools/test.py', config, checkpoint, '--work-dir', str(work_dir),
           '--cfg-options', *options]
    print(f'[{label}] ' + ' '.join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f'{label} failed:\n{done.stdout[-3000:]}')
    files = sorted(p for p in work_dir.glob('*/*.json') if p.stem == p.parent.name)
    metrics = json.loads(files[-1].read_text())
    return dict({k: metrics[v] for k, v in keys.items()},
                minutes=round((time.time() - start) / 60, 1), options=options)


class Benchmark:
    def __init__(self, args):
        self.args = args
        self.root = args.work_root
        self.results = ResultsFile(RESULTS, TABLE)
        self.results.data.update(
            data='Fashion Scenes val (500 canvases, COCO bbox metrics) / Fashion-MNIST test '
                 '(10,000 images, top-1)',
            commands=sorted(set(self.results.data.get('commands', [])) | {
                'python benchmarks/ptq_qat.py ' + ' '.join(sys.argv[1:])}))

    def record(self, row: str, seed: int, run: dict) -> None:
        self.results.record(row, seed, run, summarize)

    def done(self, row: str, seed: int) -> bool:
        return self.results.has(row, seed) and not self.args.force

    # ------------------------------------------------------------------------- detector
    def float_checkpoint(self, seed: int) -> str:
        work_dir = self.root / f'float_seed{seed}'
        if not self.done('float', seed):
            options = [f'randomness.seed={seed}']
            minutes = train(FLOAT_CONFIG, work_dir, options, f'float seed {seed}')
            self.record('float', seed, dict(final_metrics(work_dir, DET), minutes=minutes,
                                            options=options))
        return (work_dir / 'last_checkpoint').read_text().strip()

    def ptq(self, seed: int) -> None:
        checkpoint = self.float_checkpoint(seed)
        for bits in self.args.bits:
            for init in self.args.inits:
                row = f'ptq/w{bits}/{init}'
                if self.done(row, seed):
                    continue
                options = BASELINE + bits_options(bits) + INITS[init] + [
                    f'randomness.seed={seed}']
                self.record(row, seed, test(QUANT_CONFIG, checkpoint,
                                            self.root / f'ptq_w{bits}_{init}_seed{seed}',
                                            options, DET, f'{row} seed {seed}'))

    def qat(self, seed: int) -> None:
        checkpoint = self.float_checkpoint(seed)
        for iters in self.args.iters:
            for start in self.args.starts:
                row = f'qat/{iters}/{start}'
                if self.done(row, seed):
                    continue
                work_dir = self.root / f'qat_{iters}_{start}_seed{seed}'
                options = BASELINE + INITS[start] + [
                    f'randomness.seed={seed}', f'load_from={checkpoint}',
                    *iter_schedule_options(iters)]
                if iters > CURVE_EVERY:  # a learning curve: validate every CURVE_EVERY
                    options.append(f'train_cfg.val_interval={CURVE_EVERY}')
                minutes = train(QUANT_CONFIG, work_dir, options, f'{row} seed {seed}')
                curve = learning_curve(work_dir)
                self.record(row, seed, dict(final_metrics(work_dir, DET), minutes=minutes,
                                            iters=iters, options=options, curve=curve))

    def float_more(self, seed: int) -> None:
        """The float detector trained ``iters`` more iterations from its checkpoint with the QAT
        rows' optimizer and schedule (lr 1e-4, x0.1 at 75%, no warm-up), unquantized: the
        reference for a long QAT, which is also that much more training."""
        checkpoint = self.float_checkpoint(seed)
        for iters in self.args.iters:
            row = f'float-more/{iters}'
            if self.done(row, seed):
                continue
            work_dir = self.root / f'float_more_{iters}_seed{seed}'
            options = [f'randomness.seed={seed}', f'load_from={checkpoint}',
                       'optim_wrapper.optimizer.lr=1e-4', 'param_scheduler.0.start_factor=1.0',
                       f'train_cfg.max_iters={iters}',
                       f'train_cfg.val_interval={min(iters, CURVE_EVERY)}',
                       f'default_hooks.checkpoint.interval={iters}',
                       f'param_scheduler.1.end={iters}',
                       f'param_scheduler.1.milestones=[{max(1, int(iters * 0.75))}]']
            minutes = train(FLOAT_CONFIG, work_dir, options, f'{row} seed {seed}')
            curve = learning_curve(work_dir)
            self.record(row, seed, dict(final_metrics(work_dir, DET), minutes=minutes,
                                        iters=iters, options=options, curve=curve))

    # ------------------------------------------------------------------------------ ViT
    def vit_checkpoint(self) -> str:
        work_dir = self.root / 'vit_float'
        if not self.done('vit-float', 0):
            options = ['randomness.seed=0', f'train_dataloader.dataset.indices={VIT_SUBSET}']
            minutes = train(VIT_FLOAT, work_dir, options, 'vit float')
            self.record('vit-float', 0, dict(final_metrics(work_dir, CLS), minutes=minutes,
                                             options=options))
        return (work_dir / 'last_checkpoint').read_text().strip()

    def vit_ptq(self, seed: int) -> None:
        checkpoint = self.vit_checkpoint()
        for bits in self.args.bits:
            for init in self.args.inits:
                row = f'vit-ptq/w{bits}/{init}'
                if self.done(row, seed):
                    continue
                options = bits_options(bits) + INITS[init] + [f'randomness.seed={seed}']
                self.record(row, seed, test(VIT_QUANT, checkpoint,
                                            self.root / f'vit_ptq_w{bits}_{init}_seed{seed}',
                                            options, CLS, f'{row} seed {seed}'))

    def vit_qat(self, seed: int) -> None:
        checkpoint = self.vit_checkpoint()
        for epochs in self.args.vit_epochs:
            for start in self.args.starts:
                row = f'vit-qat/{epochs}e/{start}'
                if self.done(row, seed):
                    continue
                work_dir = self.root / f'vit_qat_{epochs}e_{start}_seed{seed}'
                options = INITS[start] + [
                    f'randomness.seed={seed}', f'load_from={checkpoint}',
                    f'train_cfg.max_epochs={epochs}', f'param_scheduler.0.end={epochs}',
                    f'train_dataloader.dataset.indices={VIT_SUBSET}']
                minutes = train(VIT_QUANT, work_dir, options, f'{row} seed {seed}')
                self.record(row, seed, dict(final_metrics(work_dir, CLS), minutes=minutes,
                                            epochs=epochs, options=options))


# ------------------------------------------------------------------------------ the tables
def _cell(runs: dict, metric: str, reference: dict | float | None) -> str:
    """Mean ± half range over the seeds of ``runs`` ({seed: run}), [n] seeds, and in brackets
    the mean share of ``reference``: each seed's own float run ({seed: run}) or one number."""
    if not runs:
        return '-'
    values = list(runs.values())
    mean, spread = mean_spread([r[metric] for r in values])
    digits = 2 if metric == 'top1' else 3
    text = f'{mean:.{digits}f}'
    if len(values) > 1:
        text += f' ± {spread:.{digits}f}'
    if isinstance(reference, dict):
        shares = [r[metric] / reference[s][metric] for s, r in runs.items() if s in reference]
    else:
        shares = [r[metric] / reference for r in values] if reference else []
    if shares:
        text += f' ({100 * sum(shares) / len(shares):.1f}%)'
    return text + ('' if len(values) == 1 else f' [{len(values)}]')


def summarize(results: ResultsFile) -> str:
    runs = results.data.get('runs', {})

    def rows(prefix):
        return {k[len(prefix):]: v for k, v in runs.items() if k.startswith(prefix)}

    lines = ["Mean ± half range over seeds, [n] seeds; in brackets the mean share of each seed's "
             'own float model.', '']
    floats = runs.get('float', {})
    if floats:
        lines += ['## Demo detector (Conditional DETR, MobileNetV2), Fashion Scenes val', '',
                  f"Float: mAP {_cell(floats, 'mAP', None)}, AP50 {_cell(floats, 'AP50', None)}"
                  '; per seed ' + ', '.join(f"{s}: {r['mAP']:.3f}"
                                            for s, r in sorted(floats.items())), '']
    ptq = rows('ptq/')
    if ptq:
        lines += ['### Post-training quantization (no training; tools/test.py on the float '
                  'checkpoint)', '', '| steps from | W8A8-Attn8 mAP | W6A6-Attn8 mAP | '
                  'W4A4-Attn8 mAP |', '|---|---|---|---|']
        for init, name in INIT_NAMES.items():
            cells = [_cell(ptq.get(f'w{b}/{init}', {}), 'mAP', floats) for b in (8, 6, 4)]
            if any(c != '-' for c in cells):
                lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    qat = rows('qat/')
    if qat:
        lines += ['### 4-bit QAT (LSQ baseline, 4-4-8) from the float detector of the same seed',
                  '', '| iterations | start | mAP | AP50 |', '|---|---|---|---|']
        for row in sorted(qat, key=lambda k: (int(k.split('/')[0]), k)):
            iters, start = row.split('/')
            lines.append(f'| {iters} | {INIT_NAMES[start]} | '
                         f"{_cell(qat[row], 'mAP', floats)} | {_cell(qat[row], 'AP50', None)} |")
        lines.append('')
        curves = [(row, seed, run['curve']) for row in sorted(qat)
                  for seed, run in sorted(qat[row].items()) if len(run.get('curve', [])) > 1]
        if curves:
            lines += [f'Learning curves (mAP every {CURVE_EVERY} iterations):', '']
            lines += [f"- {row.split('/')[0]} it., {INIT_NAMES[row.split('/')[1]]}, seed {seed}: "
                      + ', '.join(f'{m:.3f}' for m in curve) for row, seed, curve in curves]
            lines.append('')
    more = rows('float-more/')
    if more:
        lines += ['The float detector trained as many more iterations from the same checkpoint, '
                  "with the QAT rows' optimizer and schedule but unquantized (what the extra "
                  'training alone gives):', '']
        for row in sorted(more, key=int):
            curves = '; '.join(f"seed {seed}: " + ', '.join(f'{m:.3f}' for m in run['curve'])
                               for seed, run in sorted(more[row].items()) if run.get('curve'))
            lines.append(f"- {row} it.: mAP {_cell(more[row], 'mAP', floats)}, AP50 "
                         f"{_cell(more[row], 'AP50', None)}"
                         + (f' (curve every {CURVE_EVERY} it.: {curves})' if curves else ''))
        lines.append('')
    vit_float = runs.get('vit-float', {}).get('0')
    vit_ptq, vit_qat = rows('vit-ptq/'), rows('vit-qat/')
    if vit_float:
        top = vit_float['top1']
        lines += ['## Miniature ViT (4 layers, embed 64), Fashion-MNIST test', '',
                  f'Float: top-1 {top:.2f} (seed 0, 10 epochs on the first {VIT_SUBSET} '
                  'training images; every row below starts from it)', '']
        if vit_ptq:
            lines += ['### Post-training quantization', '', '| steps from | W8A8-Attn8 top-1 | '
                      'W6A6-Attn8 top-1 | W4A4-Attn8 top-1 |', '|---|---|---|---|']
            for init, name in INIT_NAMES.items():
                cells = [_cell(vit_ptq.get(f'w{b}/{init}', {}), 'top1', top) for b in (8, 6, 4)]
                if any(c != '-' for c in cells):
                    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
            lines.append('')
        if vit_qat:
            lines += ['### 4-bit QAT (4-4-8)', '', '| epochs | start | top-1 |', '|---|---|---|']
            for row in sorted(vit_qat):
                epochs, start = row.split('/')
                lines.append(f'| {epochs[:-1]} | {INIT_NAMES[start]} | '
                             f"{_cell(vit_qat[row], 'top1', top)} |")
            lines.append('')
    return '\n'.join(lines).rstrip()


PARTS = ('float', 'ptq', 'qat', 'float-more', 'vit-float', 'vit-ptq', 'vit-qat')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--parts', nargs='+', choices=PARTS, default=['float', 'ptq'])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--bits', nargs='+', type=int, default=[8, 6, 4])
    parser.add_argument('--inits', nargs='+', choices=list(INITS),
                        default=list(INITS))
    parser.add_argument('--iters', nargs='+', type=int, default=[120],
                        help='QAT iterations of the detector rows')
    parser.add_argument('--vit-epochs', nargs='+', type=int, default=[1, 3])
    parser.add_argument('--starts', nargs='+', choices=list(INITS), default=['mse-pct'],
                        help='QAT starts')
    parser.add_argument('--work-root', type=Path, default=Path('work_dirs/ptq_qat'))
    parser.add_argument('--force', action='store_true', help='rerun runs already recorded')
    args = parser.parse_args()
    bench = Benchmark(args)
    for part in args.parts:
        for seed in args.seeds:
            if part == 'float':
                bench.float_checkpoint(seed)
            elif part == 'vit-float':
                bench.vit_checkpoint()
            else:
                getattr(bench, part.replace('-', '_'))(seed)


if __name__ == '__main__':
    main()
