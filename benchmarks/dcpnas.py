"""Miniature reproduction of DCP-NAS on Fashion-MNIST: does searching under a real-valued
parent find better 1-bit cells?

    python benchmarks/dcpnas.py                          # the 4 search rows x 2 seeds
    python benchmarks/dcpnas.py --rows random --seeds 2  # add one run
    python benchmarks/dcpnas.py --rows detection --seeds 0  # the detection transfer

Rows, each retrained the same way (``configs/dcpnas/dcpnas-retrain_1xb128-3e_fashion-mnist.py``
through ``tools/train.py``, with the row's genotype and the seed):

- ``dcpnas``: the genotype of ``configs/dcpnas/dcpnas_search_fashion-mnist.py`` (parent and
  1-bit child, tangent propagation, decoupled optimisation), searched with the seed;
- ``no_decoupled``: the DCP-NAS search with plain gradient steps on alpha
  (``model.decoupled=None``: no weight-norm mask, no backtracking ``psi``);
- ``child_only``: the same search without the parent (``model.use_parent=False``: first-order
  DARTS on the 1-bit child alone);
- ``random``: a genotype drawn uniformly (``mmext.nas.random_genotype``) with the seed.

Per run: test top-1 of the retrained network, its parameters and OPs (``bireal64``: FLOPs +
1-bit MACs / 64, on a 28 x 28 image) and the search's wall time.

The ``detection`` row is the transfer: the 1-bit network of the shipped seed-0 genotype as the
backbone of the demo Conditional DETR (``configs/dcpnas/conditional-detr_dcpnas-fashion-mnist-
c16_fashion-scenes.py``), trained from scratch for the demo detector's budget (1,600 iterations)
and evaluated on the 500 val canvases (COCO bbox mAP, with its learning curve), beside the float
MobileNetV2 detector of ``benchmarks/ptq_qat.py`` trained the same way.

Runs accumulate in ``benchmarks/results/dcpnas.json`` and a markdown table beside it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from ablation_runs import REPO, ResultsFile, final_metrics, learning_curve, mean_spread, train
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmext.utils.atomic import atomic_write

SEARCH_CONFIG = 'configs/dcpnas/dcpnas_search_fashion-mnist.py'
RETRAIN_CONFIG = 'configs/dcpnas/dcpnas-retrain_1xb128-3e_fashion-mnist.py'
RESULTS = Path(__file__).parent / 'results/dcpnas.json'
METRICS = {'top1': 'accuracy/top1'}
ROWS = {
    'dcpnas': ('DCP-NAS search (parent + 1-bit child)', ['model.use_parent=True']),
    'no_decoupled': ('DCP-NAS search without the decoupled step',
                     ['model.use_parent=True', 'model.decoupled=None']),
    'child_only': ('1-bit child searched alone (no parent)', ['model.use_parent=False']),
    'random': ('random genotype', None),
    'detection': ('detection transfer', None),
}
DETECTION_CONFIG = 'configs/dcpnas/conditional-detr_dcpnas-fashion-mnist-c16_fashion-scenes.py'
DETECTION_METRICS = {'mAP': 'coco/bbox_mAP', 'AP50': 'coco/bbox_mAP_50'}
PAPER = ('DCP-NAS on ImageNet (book Table 4.4): 63.0 top-1 with the F-norm discrepancy; the '
         'paper compares against other binary NAS methods, not against a random genotype or a '
         'child searched alone on this data')


def network_cost(genotype_file: Path) -> dict:
    """Parameters, their storage (1-bit weights at 1 bit) and OPs of the retrain config's
    network with this genotype."""
    from mmext.quant import count_macs, parameter_bits, summarize_ops
    cfg = Config.fromfile(REPO / RETRAIN_CONFIG)
    cfg.model.backbone.genotype = str(genotype_file)
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            records = count_macs(model, torch.zeros(1, 1, 28, 28), mode='tensor')
    ops = summarize_ops(records, 'bireal64')
    params, bits = parameter_bits(model)
    return dict(params=params, memory_mbit=round(bits / 1e6, 3), mops=round(ops['ops'] / 1e6, 3),
                float_mflops=round(ops['flops'] / 1e6, 3))


def search(row: str, seed: int, work_root: Path, extra: list[str]) -> tuple[Path, float | None]:
    """The row's genotype file and its search time in minutes (None for a random one)."""
    work_dir = work_root / f'search_{row}_seed{seed}'
    if row == 'random':
        from mmext.nas import genotype_fragment, random_genotype
        work_dir.mkdir(parents=True, exist_ok=True)
        genotype = random_genotype(generator=torch.Generator().manual_seed(seed))
        path = work_dir / 'genotype.py'
        atomic_write(path, genotype_fragment(genotype, f'random_genotype, seed {seed}'))
        return path, None
    minutes = train(SEARCH_CONFIG, work_dir, [f'randomness.seed={seed}', *ROWS[row][1], *extra],
                    f'search {row} seed {seed}')
    return work_dir / 'genotype.py', minutes


def detection_transfer(seed: int, work_root: Path) -> dict:
    """Train the transfer detector with ``tools/train.py``; its last validation and curve."""
    work_dir = work_root / f'detection_seed{seed}'
    minutes = train(DETECTION_CONFIG, work_dir, [f'randomness.seed={seed}'],
                    f'detection transfer seed {seed}')
    return dict(final_metrics(work_dir, DETECTION_METRICS), minutes=minutes,
                curve=learning_curve(work_dir), config=DETECTION_CONFIG)


def run(row: str, seed: int, work_root: Path, search_extra: list[str],
        retrain_extra: list[str]) -> dict:
    if row == 'detection':
        return detection_transfer(seed, work_root)
    genotype_file, search_minutes = search(row, seed, work_root, search_extra)
    work_dir = work_root / f'retrain_{row}_seed{seed}'
    minutes = train(RETRAIN_CONFIG, work_dir, [f'randomness.seed={seed}',
                                               f'model.backbone.genotype={genotype_file}',
                                               *retrain_extra], f'retrain {row} seed {seed}')
    from mmext.nas import load_genotype
    return dict(final_metrics(work_dir, METRICS), search_minutes=search_minutes,
                retrain_minutes=minutes, genotype=str(load_genotype(str(genotype_file))),
                **network_cost(genotype_file))


def summarize(results: ResultsFile) -> str:
    lines = [PAPER, '', '| row | runs | top-1 (mean ± spread) | params | memory (Mbit) | '
             'OPs (M, bireal64) | search min |', '|---|---|---|---|---|---|---|']
    for row, (name, _) in ROWS.items():
        if row == 'detection':
            continue
        runs = list(results.runs(row).values())
        if not runs:
            continue
        top1, spread = mean_spread([r['top1'] for r in runs])
        params = mean_spread([r['params'] for r in runs])[0]
        mops = mean_spread([r['mops'] for r in runs])[0]
        mbit = mean_spread([r['memory_mbit'] for r in runs])[0]
        minutes = [r['search_minutes'] for r in runs if r['search_minutes'] is not None]
        search_min = f'{mean_spread(minutes)[0]:.1f}' if minutes else '-'
        results.data.setdefault('summary', {})[row] = dict(
            top1=dict(mean=round(top1, 3), spread=round(spread, 3), n=len(runs)),
            params=round(params), memory_mbit=round(mbit, 3), mops=round(mops, 3))
        lines.append(f'| {name} | {len(runs)} | {top1:.2f} ± {spread:.2f} | {params / 1e3:.1f}k '
                     f'| {mbit:.3f} | {mops:.2f} | {search_min} |')
    detection = results.data.get('runs', {}).get('detection', {})
    if detection:
        lines += ['', 'Detection transfer (COCO bbox on the 500 Fashion Scenes val canvases, '
                  '1,600 iterations from scratch):', '',
                  '| backbone | seed | mAP | AP50 | mAP at each validation | train min |',
                  '|---|---|---|---|---|---|']
        lines += [f"| 1-bit DCP-NAS cells (seed-0 genotype) | {seed} | {r['mAP']:.3f} | "
                  f"{r['AP50']:.3f} | {' / '.join(f'{v:.3f}' for v in r['curve'])} | "
                  f"{r['minutes']:.1f} |" for seed, r in sorted(detection.items())]
    return '\n'.join(lines + results.superseded_lines(tuple(METRICS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', nargs='+', choices=list(ROWS),
                        default=[row for row in ROWS if row != 'detection'])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--search-images', type=int,
                        help="images per half of the search (default: the config's)")
    parser.add_argument('--retrain-epochs', type=int, help="default: the config's")
    parser.add_argument('--retrain-subset', type=int,
                        help='retrain on the first N training images only')
    parser.add_argument('--results', type=Path, default=RESULTS)
    parser.add_argument('--work-root', type=Path, default=Path('work_dirs/dcpnas_benchmark'))
    parser.add_argument('--force', action='store_true', help='rerun runs already recorded')
    args = parser.parse_args()
    results = ResultsFile(args.results, args.results.with_suffix('.md'))
    results.data.update(search_config=SEARCH_CONFIG, retrain_config=RETRAIN_CONFIG,
                        data='Fashion-MNIST test (10,000 images), top-1',
                        command='python benchmarks/dcpnas.py ' + ' '.join(sys.argv[1:]))
    search_extra = []
    if args.search_images:
        search_extra = [f'train_dataloader.dataset.indices={args.search_images}',
                        f'train_cfg.arch_dataloader.dataset.indices={args.search_images}']
    retrain_extra = []
    if args.retrain_epochs:
        retrain_extra += [f'train_cfg.max_epochs={args.retrain_epochs}',
                          f'param_scheduler.0.end={args.retrain_epochs}']
    if args.retrain_subset:
        retrain_extra.append(f'train_dataloader.dataset.indices={args.retrain_subset}')
    for seed in args.seeds:
        for row in args.rows:
            if results.has(row, seed) and not args.force:
                continue
            results.record(row, seed, run(row, seed, args.work_root, search_extra,
                                          retrain_extra), summarize)


if __name__ == '__main__':
    main()
