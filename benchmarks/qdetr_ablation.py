"""Miniature reproduction of Q-DETR's ablation on the embedded Fashion Scenes set.

    python benchmarks/qdetr_ablation.py --seeds 0 1 2                # float detectors: ptq_qat.py
    python benchmarks/qdetr_ablation.py --rows qdetr-4 --seeds 2     # add one run

Rows (the paper's VOC ablation): the LSQ baseline, +DA, +FQM and Q-DETR
(DA + FQM) at W-A-Attn 4-4-8, and the baseline and Q-DETR at 3-3-8 and 2-2-8. Every run trains
``configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py`` (QAT from
the float demo detector of the same seed, which is also the teacher; steps calibrated first, as
the config says) through ``tools/train.py`` with the row's ``--cfg-options`` and the seed, and
reads the final COCO bbox mAP and AP50 of the 500 val canvases from the run's log. The float
detectors are those of ``benchmarks/ptq_qat.py --parts float --seeds ...`` (``--teacher``
names another, ``{seed}`` standing for the seed); each row's share of its own float detector's
mAP is reported beside it. Runs accumulate in ``benchmarks/results/qdetr_ablation.json`` (a run
already there is skipped unless ``--force``); the summary and a markdown table are rewritten
after every run. ``previous`` in the file keeps the table measured before calibration (LSQ
initialisation, per-tensor inputs, one float detector), which the table shows beside.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ablation_runs import ResultsFile, final_metrics, learning_curve, mean_spread, train

from mmext.utils.schedule import iter_schedule_options

FLOATS = Path(__file__).parent / 'results/ptq_qat.json'

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
    'baseline-3': ('LSQ baseline', 3, [NO_DA, NO_TEACHER]),
    'qdetr-3': ('Q-DETR (DA + FQM)', 3, []),
    'baseline-2': ('LSQ baseline', 2, [NO_DA, NO_TEACHER]),
    'qdetr-2': ('Q-DETR (DA + FQM)', 2, []),
}
PAPER_VOC_AP50 = {  # Q-DETR paper, DETR-R50 on VOC (AP50), 4-4-8, 3-3-8 and 2-2-8
    'baseline-4': 78.0, 'da-4': 78.8, 'fqm-4': 81.5, 'qdetr-4': 82.7,
    'baseline-3': 76.8, 'qdetr-3': 82.1, 'baseline-2': 69.7, 'qdetr-2': 76.4,
}
LOW_BIT_ITERS = 1600  # the 3- and 2-bit rows train as long as the float detector


def float_maps() -> dict[str, float]:
    """{seed: mAP} of the float detectors of benchmarks/ptq_qat.py."""
    if not FLOATS.is_file():
        return {}
    return {seed: run['mAP'] for seed, run in
            json.loads(FLOATS.read_text()).get('runs', {}).get('float', {}).items()}


def run(row: str, seed: int, teacher: str, iters: int | None, work_root: Path) -> dict:
    _, bits, options = ROWS[row]
    work_dir = work_root / f'{row}_seed{seed}'
    options = options + [f'model.quant.w_bits={bits}', f'model.quant.a_bits={bits}',
                         f'randomness.seed={seed}', f'load_from={teacher}']
    if 'model.teacher=None' not in options:
        options.append(f'model.teacher.checkpoint={teacher}')
    iters = iters or (LOW_BIT_ITERS if bits < 4 else None)
    if iters:
        options += iter_schedule_options(iters)
    if (iters or 400) > 400:  # a learning curve: validate every 400 iterations
        options.append('train_cfg.val_interval=400')
    minutes = train(CONFIG, work_dir, options, f'{row} seed {seed}')
    curve = learning_curve(work_dir)
    return dict(final_metrics(work_dir, METRICS), minutes=minutes, iters=iters, options=options,
                curve=curve)


def summarize(results: ResultsFile) -> str:
    floats = float_maps()
    previous = results.data.get('previous', {}).get('summary', {})
    lines = ['| row | W-A-Attn | QAT it. | runs | mAP (mean ± spread) | AP50 (mean ± spread) | '
             'kept of own float mAP | before calibration: mAP | paper, VOC AP50 in % |',
             '|---|---|---|---|---|---|---|---|---|']
    for row, (name, bits, _) in ROWS.items():
        runs = results.runs(row)
        if not runs:
            continue
        stats = {m: mean_spread([r[m] for r in runs.values()]) for m in METRICS}
        kept = [r['mAP'] / floats[s] for s, r in runs.items() if s in floats]
        results.data.setdefault('summary', {})[row] = dict(
            {m: dict(mean=round(mean, 4), spread=round(spread, 4), n=len(runs))
             for m, (mean, spread) in stats.items()},
            kept=round(sum(kept) / len(kept), 4) if kept else None)
        iters = sorted({r.get('iters') or 400 for r in runs.values()})
        before = previous.get(row, {}).get('mAP')
        lines.append(
            f"| {name} | {bits}-{bits}-8 | {'/'.join(map(str, iters))} | {len(runs)} | "
            f"{stats['mAP'][0]:.3f} ± {stats['mAP'][1]:.3f} | "
            f"{stats['AP50'][0]:.3f} ± {stats['AP50'][1]:.3f} | "
            + (f'{100 * sum(kept) / len(kept):.0f}%' if kept else '-') + ' | '
            + (f"{before['mean']:.3f} ± {before['spread']:.3f}" if before else '-')
            + f' | {PAPER_VOC_AP50[row]} |')
    curves = [(row, seed, run['curve']) for row in ROWS for seed, run in
              sorted(results.runs(row).items()) if len(run.get('curve', [])) > 1]
    if curves:
        lines += ['', 'Learning curves (mAP every 400 iterations):', '']
        lines += [f'- {ROWS[row][0]} {ROWS[row][1]}-{ROWS[row][1]}-8, seed {seed}: '
                  + ', '.join(f'{m:.3f}' for m in curve) for row, seed, curve in curves]
    if previous:
        lines += ['', 'Before calibration: ' + results.data['previous']['note']]
    return '\n'.join(lines + results.superseded_lines(tuple(METRICS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--teacher', default='work_dirs/ptq_qat/float_seed{seed}/iter_1600.pth',
                        help='the float demo detector checkpoint (teacher and QAT start); '
                        '{seed} stands for the run\'s seed')
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--iters', type=int, help="training iterations (default: the config's)")
    parser.add_argument('--work-root', type=Path, default=Path('work_dirs/qdetr_ablation'))
    parser.add_argument('--force', action='store_true', help='rerun runs already recorded')
    args = parser.parse_args()
    for seed in args.seeds:
        teacher = args.teacher.format(seed=seed)
        if not Path(teacher).is_file():
            raise SystemExit(f'{teacher} does not exist: train the float demo detector of seed '
                             f'{seed} first (python benchmarks/ptq_qat.py --parts float --seeds '
                             f'{seed}), or name one with --teacher')
    results = ResultsFile(RESULTS, TABLE)
    results.data.update(config=CONFIG, data='Fashion Scenes val (500 canvases), COCO bbox metrics',
                        commands=sorted(set(results.data.get('commands', [])) | {
                            'python benchmarks/qdetr_ablation.py ' + ' '.join(sys.argv[1:])}))
    results.data.pop('command', None)
    for seed in args.seeds:
        for row in args.rows:
            if results.has(row, seed) and not args.force:
                continue
            run_result = run(row, seed, args.teacher.format(seed=seed), args.iters,
                             args.work_root)
            results.record(row, seed, run_result, summarize)

if __name__ == '__main__':
    main()
