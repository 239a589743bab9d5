"""Miniature reproduction of Q-DETR's ablation on the embedded Fashion Scenes set.

    python benchmarks/qdetr_ablation.py --teacher work_dirs/demo/train/iter_1600.pth
    python benchmarks/qdetr_ablation.py --teacher ... --rows qdetr-4 --seeds 2   # add one run

Rows (the paper's VOC ablation, methods.md §2.6): the LSQ baseline, +DA, +FQM and Q-DETR
(DA + FQM) at W-A-Attn 4-4-8, and the baseline and Q-DETR at 2-2-8. Every run trains
``configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py`` (QAT from
the float demo detector, which is also the teacher) through ``tools/train.py`` with the row's
``--cfg-options`` and a seed, and reads the final COCO bbox mAP and AP50 of the 500 val canvases
from the run's log. Runs accumulate in ``benchmarks/results/qdetr_ablation.json`` (a run already
there is skipped unless ``--force``), so the whole can be built one row at a time; the summary
(mean and spread over seeds) and a markdown table are rewritten after every run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ablation_runs import ResultsFile, final_metrics, mean_spread, train

from mmext.utils.schedule import iter_schedule_options

CONFIG = 'configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py'
RESULTS = Path(__file__).parent / 'results/qdetr_ablation.json'
TABLE = Path(__file__).parent / 'results/qdetr_ablation.md'
METRICS = {'mAP': 'coco/bbox_mAP', 'AP50': 'coco/bbox_mAP_50'}

NO_DA, NO_TEACHER = 'model.distribution_alignment=None', 'model.teacher=None'
ROWS = {
    'baseline-4': ('LSQ baseline', 4, [NO_DA, NO_TEACHER]),
    'da-4': ('+DA', 4, [NO_TEACHER]),
    'fqm-4': ('+FQM', 4, [NO_DA]),
    'qdetr-4': ('Q-DETR (DA + FQM)', 4, []),
    'baseline-2': ('LSQ baseline', 2, [NO_DA, NO_TEACHER]),
    'qdetr-2': ('Q-DETR (DA + FQM)', 2, []),
}
PAPER_VOC_AP50 = {  # Q-DETR paper, DETR-R50 on VOC (AP50), 4-4-8 and 2-2-8
    'baseline-4': 78.0, 'da-4': 78.8, 'fqm-4': 81.5, 'qdetr-4': 82.7,
    'baseline-2': 69.7, 'qdetr-2': 76.4,
}


def run(row: str, seed: int, teacher: str, iters: int | None, work_root: Path) -> dict:
    _, bits, options = ROWS[row]
    work_dir = work_root / f'{row}_seed{seed}'
    options = options + [f'model.quant.w_bits={bits}', f'model.quant.a_bits={bits}',
                         f'randomness.seed={seed}', f'load_from={teacher}']
    if 'model.teacher=None' not in options:
        options.append(f'model.teacher.checkpoint={teacher}')
    if iters:
        options += iter_schedule_options(iters)
    minutes = train(CONFIG, work_dir, options, f'{row} seed {seed}')
    return dict(final_metrics(work_dir, METRICS), minutes=minutes, iters=iters, options=options)


def summarize(results: ResultsFile) -> str:
    lines = ['| row | W-A-Attn | runs | mAP (mean ± spread) | AP50 (mean ± spread) | '
             'paper, VOC AP50 in % |', '|---|---|---|---|---|---|']
    for row, (name, bits, _) in ROWS.items():
        runs = list(results.runs(row).values())
        if not runs:
            continue
        stats = {m: mean_spread([r[m] for r in runs]) for m in METRICS}
        results.data.setdefault('summary', {})[row] = {
            m: dict(mean=round(mean, 4), spread=round(spread, 4), n=len(runs))
            for m, (mean, spread) in stats.items()}
        lines.append(f"| {name} | {bits}-{bits}-8 | {len(runs)} | "
                     f"{stats['mAP'][0]:.3f} ± {stats['mAP'][1]:.3f} | "
                     f"{stats['AP50'][0]:.3f} ± {stats['AP50'][1]:.3f} | {PAPER_VOC_AP50[row]} |")
    return '\n'.join(lines + results.superseded_lines(tuple(METRICS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--teacher', required=True,
                        help='the float demo detector checkpoint (teacher and QAT start)')
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--iters', type=int, help="training iterations (default: the config's)")
    parser.add_argument('--work-root', type=Path, default=Path('work_dirs/qdetr_ablation'))
    parser.add_argument('--force', action='store_true', help='rerun runs already recorded')
    args = parser.parse_args()
    if not Path(args.teacher).is_file():
        raise SystemExit(f'{args.teacher} does not exist: train the float demo detector first '
                         '(make demo, or tools/train.py configs/demo/conditional-detr_'
                         'mobilenetv2-s16_3x3l_20min_fashion-scenes.py)')
    results = ResultsFile(RESULTS, TABLE)
    results.data.update(config=CONFIG, data='Fashion Scenes val (500 canvases), COCO bbox metrics',
                        command='python benchmarks/qdetr_ablation.py ' + ' '.join(sys.argv[1:]))
    for seed in args.seeds:
        for row in args.rows:
            if results.has(row, seed) and not args.force:
                continue
            run_result = run(row, seed, args.teacher, args.iters, args.work_root)
            results.record(row, seed, run_result, summarize)

if __name__ == '__main__':
    main()
