"""Miniature reproduction of SADA's claim on the few-shot Fashion Scenes items demo (frozen demo
CLIP, CoOp's split-file protocol): accuracy against shots for every baseline, SADA, and SADA
without the attack or without the EMD term.

    python benchmarks/sada.py                              # every row x 5 shot counts x 3 seeds
    python benchmarks/sada.py --rows sada coop --shots 4 16 --seeds 1

Rows (configs in ``configs/sada/``; 500 test canvases, top-1):

- ``zero_shot``: no training, one run;
- ``linear_probe``: logistic regression on the frozen image features of the k shots (CoOp's
  linear-probe baseline; inverse regularisation C chosen on the val split), and once on all
  2,402 training canvases (``all`` in the results): the ceiling of any method that keeps the
  image encoder frozen and its features linear;
- ``tip_adapter``: training-free cache of the k-shot features;
- ``coop``, ``proda``: prompt learning on the same shots and schedule;
- ``sada``, ``sada_no_attack``, ``sada_no_emd``: the method and its two ablations.

Training runs go through ``tools/train.py`` into ``work_dirs/benchmarks/sada/`` (a finished run
is reused), evaluations without training through ``tools/test.py``. Results accumulate in
``benchmarks/results/sada.json`` with a markdown table beside it and a plot in
``projects/sada/accuracy_vs_shots.png``.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from ablation_runs import REPO, ResultsFile, final_metrics, train

ROWS = {  # row: (config, trains, sets model.num_shots, description)
    'zero_shot': ('configs/sada/zero-shot_demo-clip_fashion-scene-items.py', False, False,
                  'zero-shot CLIP'),
    'linear_probe': ('configs/sada/zero-shot_demo-clip_fashion-scene-items.py', False, False,
                     'linear probe (logistic regression on frozen features)'),
    'tip_adapter': ('configs/sada/tip-adapter_demo-clip_16shot_fashion-scene-items.py', False,
                    False, 'Tip-Adapter (training-free)'),
    'coop': ('configs/sada/coop_demo-clip_16shot-20e_fashion-scene-items.py', True, False,
             'CoOp'),
    'proda': ('configs/sada/proda_demo-clip_16shot-20e_fashion-scene-items.py', True, False,
              'ProDA'),
    'sada': ('configs/sada/sada_demo-clip_16shot-20e_fashion-scene-items.py', True, True,
             'SADA'),
    'sada_no_attack': ('configs/sada/sada_demo-clip_16shot-20e_fashion-scene-items_no-attack.py',
                       True, True, 'SADA without the selective attack'),
    'sada_no_emd': ('configs/sada/sada_demo-clip_16shot-20e_fashion-scene-items_no-emd.py',
                    True, True, 'SADA without the EMD alignment'),
}
SHOTS = (1, 2, 4, 8, 16)
RESULTS = Path(__file__).parent / 'results/sada.json'
FIGURE = REPO / 'projects/sada/accuracy_vs_shots.png'
PAPER = ('Paper (RN50, 11 datasets of the CoOp protocol): SADA above CoOp, ProDA and '
         'Tip-Adapter at every shot count; per-dataset numbers unverified. Here: the demo CLIP '
         'on Fashion-MNIST items on Fashion Scenes backgrounds.')


def options(row: str, shots: int, seed: int) -> list[str]:
    opts = [f'train_dataloader.dataset.num_shots={shots}',
            f'train_dataloader.dataset.seed={seed}', f'randomness.seed={seed}']
    return opts + ([f'model.num_shots={shots}'] if ROWS[row][2] else [])


class FrozenFeatures:
    """The frozen demo CLIP's normalised image features of a split (test pipeline), built
    once per process from the zero-shot config."""

    def __init__(self):
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmpretrain.registry import MODELS

        import mmext  # noqa: F401
        init_default_scope('mmpretrain')
        self.cfg = Config.fromfile(REPO / ROWS['zero_shot'][0])
        self.model = MODELS.build(self.cfg.model).eval()

    def __call__(self, split: str, shots: int | None = None, seed: int = 1):
        import torch
        from mmengine.runner import Runner
        loader = dict(self.cfg.test_dataloader)
        loader['dataset'] = dict(loader['dataset'], split=split, num_shots=shots, seed=seed)
        feats, labels = [], []
        with torch.no_grad():
            for data in Runner.build_dataloader(loader):
                data = self.model.data_preprocessor(data, False)
                feats.append(self.model.clip.encode_image(data['inputs']).float())
                labels += [s.gt_label.item() for s in data['data_samples']]
        return torch.cat(feats).numpy(), np.array(labels)


def linear_probe(features: FrozenFeatures, shots: int | None, seed: int) -> dict:
    """Top-1 (%) on test of logistic regression on the k-shot (or, ``shots=None``, all)
    training features, C picked on val from a log grid."""
    from sklearn.linear_model import LogisticRegression
    if not hasattr(features, 'fixed'):
        features.fixed = {s: features(s) for s in ('val', 'test')}
    x, y = features('train', shots, seed)
    (xv, yv), (xt, yt) = features.fixed['val'], features.fixed['test']
    fits = [LogisticRegression(C=c, max_iter=5000).fit(x, y) for c in (0.01, 0.1, 1, 10, 100)]
    best = max(fits, key=lambda f: f.score(xv, yv))
    return dict(top1=round(100 * best.score(xt, yt), 2), C=best.C, minutes=None)


def run(row: str, shots: int, seed: int, features: FrozenFeatures | None = None) -> dict:
    config, trains, _, _ = ROWS[row]
    if row == 'linear_probe':
        return linear_probe(features, shots, seed)
    work_dir = REPO / 'work_dirs/benchmarks/sada' / f'{row}_{shots}shot_seed{seed}'
    if trains:
        try:
            return dict(final_metrics(work_dir, {'top1': 'accuracy/top1'}), minutes=None)
        except (ValueError, FileNotFoundError, StopIteration):
            minutes = train(config, work_dir, options(row, shots, seed),
                            f'{row} {shots} shots seed {seed}')
            return dict(final_metrics(work_dir, {'top1': 'accuracy/top1'}), minutes=minutes)
    done = subprocess.run([sys.executable, 'tools/test.py', config, 'none', '--work-dir',
                           str(work_dir), '--cfg-options', *options(row, shots, seed)],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = re.findall(r'accuracy/top1: ([0-9.]+)', done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f'{row} {shots} shots seed {seed} failed:\n{done.stdout[-3000:]}')
    return dict(top1=float(found[-1]), minutes=None)


def summarize(results: ResultsFile) -> str:
    runs = results.data.get('runs', {})
    lines = ['# SADA on the few-shot Fashion Scenes items demo', '', PAPER, '',
             'Top-1 on the 500 test canvases, mean +- std over the seeds run (1, 2, 3).', '',
             '| row | ' + ' | '.join(f'{k} shots' for k in SHOTS) + ' |',
             '|---|' + '---|' * len(SHOTS)]
    for row, (*_, description) in ROWS.items():
        found = runs.get(row, {})
        if not found:
            continue
        cells = []
        for k in SHOTS:
            values = [r['top1'] for key, r in found.items()
                      if key.startswith(f'{k}shot_') or row == 'zero_shot']
            spread = f' +- {np.std(values):.1f}' if len(values) > 1 else ''
            cells.append(f'{np.mean(values):.1f}{spread}' if values else '')
        lines.append(f'| {row}: {description} | ' + ' | '.join(cells) + ' |')
    ceiling = runs.get('linear_probe', {}).get('all')
    if ceiling:
        lines += ['', f'Linear probe on all 2,402 training canvases (the frozen-feature '
                  f'ceiling): {ceiling["top1"]:.1f} (C = {ceiling["C"]}).']
    return '\n'.join(lines)


def draw(results: ResultsFile) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for row, found in results.data.get('runs', {}).items():
        xs, ys, es = [], [], []
        for k in SHOTS:
            values = [r['top1'] for key, r in found.items()
                      if key.startswith(f'{k}shot_') or row == 'zero_shot']
            if values:
                xs.append(k)
                ys.append(np.mean(values))
                es.append(np.std(values))
        line = ax.errorbar(xs, ys, yerr=es, marker='o', capsize=3, label=row)
        if 'all' in found:
            ax.axhline(found['all']['top1'], ls='--', color=line[0].get_color(), lw=1,
                       label='linear probe, all training canvases')
    ax.set_xscale('log', base=2)
    ax.set_xticks(SHOTS, [str(k) for k in SHOTS])
    ax.set_xlabel('shots per class')
    ax.set_ylabel('top-1 (%)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    parser.add_argument('--shots', nargs='+', type=int, default=list(SHOTS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[1, 2, 3])
    args = parser.parse_args()
    results = ResultsFile(RESULTS, RESULTS.with_suffix('.md'))
    features = FrozenFeatures() if 'linear_probe' in args.rows else None
    if features is not None and not results.has('linear_probe', 'all'):
        results.record('linear_probe', 'all', linear_probe(features, None, 1), summarize)
    for seed in args.seeds:
        for shots in args.shots:
            for row in args.rows:
                key = f'{shots}shot_seed{seed}'
                if row == 'zero_shot' and (shots, seed) != (args.shots[0], args.seeds[0]):
                    continue  # nothing random, nothing trained: one run
                if results.has(row, key):
                    print(f'{row} {key}: done before, kept', flush=True)
                    continue
                results.record(row, key, run(row, shots, seed, features), summarize)
                draw(results)


if __name__ == '__main__':
    main()
