"""Miniature reproduction of Bi-ViT's ablation on Fashion-MNIST.

    python benchmarks/bivit_ablation.py                      # teacher (once), 5 rows x 2 seeds
    python benchmarks/bivit_ablation.py --rows bivit --seeds 2   # add one run

The real-valued teacher is the miniature ViT of
``configs/bivit/vit-mini-p4_1xb128-10e_fashion-mnist.py`` (trained once, seed 0, unless
``--teacher`` names a checkpoint). Each row trains a child of
``configs/bivit/bivit_vit-mini-p4_1xb128-3e_fashion-mnist.py`` from it through
``tools/train.py`` with a seed: the chain ``_binary-baseline`` (the paper's plain binarized ViT:
fixed scales, no qk-norm, no distillation), ``_scaling`` (learnable scaling factors),
``_qk-norm``, ``_distill`` (DeiT's hard distillation through a distillation token) and Bi-ViT
(no suffix: + ranking-aware distillation), each row adding one component to the previous;
``soft-kd`` (outside the chain, not run by default) is Bi-ViT with soft logit distillation
instead of the token. After each run, on the first 256 test images: the gradient norms
reaching the binarized attention's inputs (q, k, v, P) and Kendall's tau of the student's
attention logits against the teacher's. Runs accumulate in
``benchmarks/results/bivit_ablation.json`` (mean and spread over seeds) and a markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from ablation_runs import REPO, ResultsFile, final_metrics, mean_spread, train
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint

TEACHER_CONFIG = 'configs/bivit/vit-mini-p4_1xb128-10e_fashion-mnist.py'
CONFIG = 'configs/bivit/bivit_vit-mini-p4_1xb128-3e_fashion-mnist.py'
RESULTS = Path(__file__).parent / 'results/bivit_ablation.json'
METRICS = {'top1': 'accuracy/top1'}
ROWS = {  # name, config suffix, uses the teacher; each row adds one component to the previous
    'baseline': ('binary baseline (fixed scales, no qk-norm, no distillation)',
                 '_binary-baseline', False),
    'scaling': ('+ learnable scaling', '_scaling', False),
    'qk-norm': ('+ qk-norm', '_qk-norm', False),
    'distill': ('+ hard distillation (distillation token)', '_distill', True),
    'bivit': ('+ ranking-aware distillation (Bi-ViT)', '', True),
    'soft-kd': ('Bi-ViT with soft logit distillation (no token)', '_soft-kd', True),
}
CHAIN = [row for row in ROWS if row != 'soft-kd']
PAPER = 'Bi-ViT over the binary baseline on ImageNet: +22.1 top-1 (DeiT-T), +21.4 (Swin-T)'


def row_config(row: str) -> str:
    return CONFIG.replace('.py', f'{ROWS[row][1]}.py')


def schedule_options(epochs: int | None, train_subset: int | None, cosine: int = 0) -> list[str]:
    """Options for ``epochs`` epochs (the cosine scheduler at index ``cosine`` ends there) on
    the first ``train_subset`` training images."""
    options = []
    if epochs:
        options += [f'train_cfg.max_epochs={epochs}', f'param_scheduler.{cosine}.end={epochs}']
    if train_subset:
        options.append(f'train_dataloader.dataset.indices={train_subset}')
    return options


def build(config: str, checkpoint: Path | str):
    """The model of ``config`` (a Bi-ViT config's without its teacher) with ``checkpoint``."""
    import projects.bivit  # noqa: F401 (registers the Bi-ViT modules)
    from mmext.registry import MODELS
    cfg = Config.fromfile(REPO / config)
    if cfg.model.get('type') == 'mmext.BiViT':
        cfg.model.teacher = None
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(checkpoint), map_location='cpu', strict=True, logger='silent')
    return model


def first_test_batch(model, size: int = 256):
    from mmpretrain.structures import DataSample

    from mmext.datasets import FashionMNIST
    data = FashionMNIST(split='test', indices=size)
    images = [torch.from_numpy(data[i]['img'].copy())[None] for i in range(size)]
    samples = [DataSample().set_gt_label(data[i]['gt_label']) for i in range(size)]
    batch = model.data_preprocessor(dict(inputs=images, data_samples=samples), False)
    return batch['inputs'], batch['data_samples']


def diagnostics(row: str, checkpoint: Path, teacher_checkpoint: str) -> dict:
    from mmext.quant import twin_attention
    from projects.bivit import attention_input_gradients, attention_ranking_agreement
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # for this call only
        student = build(row_config(row), checkpoint)
        student = getattr(student, 'student', student)  # BiViT holds the classifier
        teacher = build(TEACHER_CONFIG, teacher_checkpoint).eval()
        twin_attention(teacher)
        student.eval()  # fixed scales, no dropout; gradients still flow
        inputs, samples = first_test_batch(student)
        grads = attention_input_gradients(student, inputs, samples)
        tau = attention_ranking_agreement(student, teacher, inputs[:64])
    return dict(grad_norm={k: float(f'{v:.4g}') for k, v in grads.items()},
                kendall_tau=round(tau, 4))


def run(row: str, seed: int, teacher: str, extra: list[str], work_root: Path) -> dict:
    work_dir = work_root / f'{row}_seed{seed}'
    options = [f'randomness.seed={seed}', f'load_from={teacher}', *extra]
    if ROWS[row][2]:
        options.append(f'model.teacher.checkpoint={teacher}')
    minutes = train(row_config(row), work_dir, options, f'{row} seed {seed}')
    checkpoint = Path((work_dir / 'last_checkpoint').read_text().strip())
    return dict(final_metrics(work_dir, METRICS), minutes=minutes, options=options,
                **diagnostics(row, checkpoint, teacher))


def summarize(results: ResultsFile) -> str:
    lines = [PAPER, '', f"Teacher (real-valued): top-1 {results.data['teacher']['top1']:.2f}", '',
             '| row | runs | top-1 (mean ± spread) | vs baseline | vs previous row | '
             'Kendall tau vs teacher (per seed) | grad norm q / k / v / P |',
             '|---|---|---|---|---|---|---|']
    baseline = previous = None
    for row, (name, _, _) in ROWS.items():
        runs = list(results.runs(row).values())
        if not runs:
            continue
        top1, spread = mean_spread([r['top1'] for r in runs])
        tau, _ = mean_spread([r['kendall_tau'] for r in runs])
        grads = {k: mean_spread([r['grad_norm'][k] for r in runs])[0] for k in 'qkvp'}
        baseline = top1 if row == 'baseline' else baseline
        delta = '-' if baseline is None or row == 'baseline' else f'{top1 - baseline:+.2f}'
        step = '-' if previous is None or row in ('baseline', 'soft-kd') else \
            f'{top1 - previous:+.2f}'
        previous = top1 if row != 'soft-kd' else previous
        taus = ' / '.join(f"{r['kendall_tau']:.4f}" for r in runs)
        results.data.setdefault('summary', {})[row] = dict(
            top1=dict(mean=round(top1, 3), spread=round(spread, 3), n=len(runs)),
            kendall_tau=round(tau, 4), grad_norm={k: float(f'{v:.3g}') for k, v in grads.items()})
        lines.append(f'| {name} | {len(runs)} | {top1:.2f} ± {spread:.2f} | {delta} | {step} | '
                     f'{tau:.3f} ({taus}) | '
                     + ' / '.join(f'{grads[k]:.2e}' for k in 'qkvp') + ' |')
    return '\n'.join(lines + results.superseded_lines(tuple(METRICS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--teacher', help='the float miniature ViT checkpoint (default: train '
                        'it into WORK_ROOT/teacher once)')
    parser.add_argument('--rows', nargs='+', default=CHAIN, choices=list(ROWS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--epochs', type=int, help="student epochs (default: the config's)")
    parser.add_argument('--teacher-epochs', type=int, help="teacher epochs (default: the "
                        "config's)")
    parser.add_argument('--train-subset', type=int, help='train on the first N images only '
                        '(teacher and students; for a quick check)')
    parser.add_argument('--results', type=Path, default=RESULTS,
                        help='results file (a markdown table is written beside it)')
    parser.add_argument('--work-root', type=Path, default=Path('work_dirs/bivit_ablation'))
    parser.add_argument('--force', action='store_true', help='rerun runs already recorded')
    args = parser.parse_args()
    results = ResultsFile(args.results, args.results.with_suffix('.md'))
    results.data.update(config=CONFIG, data='Fashion-MNIST test (10,000 images), top-1',
                        command='python benchmarks/bivit_ablation.py ' + ' '.join(sys.argv[1:]))
    teacher = args.teacher
    if teacher is None:
        work_dir = args.work_root / 'teacher'
        if not (work_dir / 'last_checkpoint').is_file():
            options = ['randomness.seed=0',
                       *schedule_options(args.teacher_epochs, args.train_subset, cosine=1)]
            minutes = train(TEACHER_CONFIG, work_dir, options, 'teacher')
            results.data['teacher'] = dict(final_metrics(work_dir, METRICS), minutes=minutes,
                                           config=TEACHER_CONFIG)
        teacher = (work_dir / 'last_checkpoint').read_text().strip()
    elif 'teacher' not in results.data:
        raise SystemExit('--teacher given but its accuracy is not in the results file; train it '
                         'through this script once (omit --teacher)')
    extra = schedule_options(args.epochs, args.train_subset)
    for seed in args.seeds:
        for row in args.rows:
            if results.has(row, seed) and not args.force:
                continue
            results.record(row, seed, run(row, seed, teacher, extra, args.work_root), summarize)


if __name__ == '__main__':
    main()
