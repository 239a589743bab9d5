"""Miniature reproduction of CMVDM's ablation on the simulated-fMRI demo: conditioning only
(MinD-Vis-like), + CLIP alignment, + silhouette control, + residual (full CMVDM), per seed.

    python benchmarks/cmvdm.py                    # seeds 0 and 1, every stage of the demo
    python benchmarks/cmvdm.py --seeds 0 --quick  # a few iterations of each (plumbing check)

Per seed: the fMRI encoder's masked pretraining, the silhouette network (encoder, then
decoder), stage A without and with alignment, stage B from stage A with the silhouette hint and
with silhouette + residual; each row evaluated on the 200 test stimuli by ``tools/test.py``
(PCC, SSIM grey Gaussian 1.5, 2- and 10-way identification judged by LeNet-5 trained on
Fashion-MNIST). The floor row first: a linear (ridge) decoder from voxels to pixels, its penalty
chosen on the val trials, through the same metric; a diffusion row that does not beat it on
every metric learns less from the voxels than a linear map does. Then the silhouette decoder D_s
alone (the coarse image stage B's ControlNet receives). The judge is trained first if missing. Results accumulate in
``benchmarks/results/cmvdm.json`` (table beside it); the picture ``projects/cmvdm/
reconstructions.png`` shows stimulus | each row for the same test items (first seed).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from ablation_runs import REPO, ResultsFile, seeds_parser, train

CFG = 'configs/cmvdm/'
RESULTS = Path(__file__).parent / 'results/cmvdm.json'
FIGURE = REPO / 'projects/cmvdm/reconstructions.png'
JUDGE = 'work_dirs/judge_lenet5_fashion-mnist/epoch_3.pth'
ROWS = {  # row: (config, description)
    'ridge': (None, 'floor: linear (ridge) decoder, voxels -> pixels'),
    'silhouette_decoder': ('silhouette_demo_decoder_simulated-fmri.py',
                           'the silhouette decoder D_s alone (stage B\'s hint)'),
    'conditioning': ('cmvdm_demo_stage-a-no-align_simulated-fmri.py',
                     'conditioning only (MinD-Vis-like)'),
    'alignment': ('cmvdm_demo_stage-a_simulated-fmri.py', '+ CLIP alignment'),
    'silhouette': ('cmvdm_demo_stage-b-silhouette_simulated-fmri.py', '+ silhouette control'),
    'full': ('cmvdm_demo_stage-b_simulated-fmri.py', '+ residual (full CMVDM)'),
}
METRICS = ('pcc', 'ssim_grey-gauss1.5', '2way_top1', '10way_top1', 'fd_lenet5-fmnist-fc84')
QUICK = ['train_dataloader.dataset.indices=64', 'val_dataloader.dataset.indices=4']


def last_checkpoint(work_dir: Path) -> str:
    return (work_dir / 'last_checkpoint').read_text().strip()


def chain(seed: int, quick: bool) -> dict[str, tuple[str, list[str]]]:
    """Train every stage for ``seed``; -> ``{row: (checkpoint, test options)}``."""
    root = REPO / f'work_dirs/benchmarks/cmvdm{"_quick" if quick else ""}' / f'seed{seed}'
    seed_opts = [f'randomness.seed={seed}']
    epochs = (['train_cfg.max_epochs=1'] if quick else [])
    iters = (['train_cfg.max_iters=3', 'train_cfg.val_interval=3',
              'default_hooks.checkpoint.interval=3', 'model.sampling.num_steps=3'] if quick else [])

    def run(config, name, opts):
        work = root / name
        if not (work / 'last_checkpoint').is_file():
            train(CFG + config, work, seed_opts + opts, f'{name} seed {seed}')
        return last_checkpoint(work)

    quick_data = QUICK if quick else []
    mae = run('fmri-mae_demo_simulated-fmri.py', 'mae',
              epochs + quick_data[:1] + (['default_hooks.checkpoint.interval=1'] if quick else []))
    senc = run('silhouette_demo_encoder_simulated-fmri.py', 'silhouette_encoder',
               epochs + quick_data[:1] + (['default_hooks.checkpoint.interval=1'] if quick else []))
    sdec = run('silhouette_demo_decoder_simulated-fmri.py', 'silhouette_decoder',
               epochs + [f'load_from={senc}'] + (
                   ['train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
                    'train_dataloader.dataset.datasets.0.indices=64',
                    'train_dataloader.dataset.datasets.1.indices=64',
                    'val_dataloader.dataset.indices=4'] if quick else []))
    common = [f'model.encoder.init_cfg.checkpoint={mae}'] + iters + quick_data
    out = {'silhouette_decoder': (sdec, [])}
    for row in ('conditioning', 'alignment'):
        out[row] = (run(ROWS[row][0], row, common), common)
    stage_b = common + [f'model.silhouette_checkpoint={sdec}', f'load_from={out["alignment"][0]}']
    for row in ('silhouette', 'full'):
        out[row] = (run(ROWS[row][0], row, stage_b), stage_b)
    return out


def evaluate(row: str, checkpoint: str, opts: list[str], seed: int, quick: bool) -> dict:
    work = REPO / f'work_dirs/benchmarks/cmvdm{"_quick" if quick else ""}' / f'seed{seed}' / \
        f'{row}_test'
    extra = ['test_dataloader.dataset.indices=4', 'model.sampling.num_steps=3'] if quick else []
    options = ['--cfg-options', *opts, *extra] if opts or extra else []
    done = subprocess.run([sys.executable, 'tools/test.py', CFG + ROWS[row][0], checkpoint,
                           '--work-dir', str(work), *options],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = {m: re.findall(rf'recon/{re.escape(m)}: ([-0-9.]+)', done.stdout) for m in METRICS}
    if done.returncode != 0 or not all(found.values()):
        raise RuntimeError(f'{row} seed {seed} test failed:\n{done.stdout[-3000:]}')
    return {m: float(v[-1]) for m, v in found.items()} | {'checkpoint': checkpoint}


def ridge_floor(penalties=(1e2, 1e3, 1e4, 1e5, 1e6)) -> dict:
    """Ridge regression voxels -> pixels on the training trials (dual form), the penalty with
    the best val PCC, evaluated on the test stimuli by the benchmark's metric and judge."""
    import torch
    from mmengine.config import Config

    from mmext.registry import DATASETS, METRICS
    cfg = Config.fromfile(REPO / CFG / ROWS['conditioning'][0])

    def arrays(split):
        loader = cfg[f'{split}_dataloader'] if split != 'train' else cfg.train_dataloader
        dataset = DATASETS.build(dict(loader['dataset'], split=split, indices=None,
                                      data_root=str(REPO / cfg.data_root), pipeline=[]))
        items = [dataset.get_data_info(i) for i in range(len(dataset))]
        voxels = torch.from_numpy(np.stack([it['voxels'] for it in items])).double()
        images = torch.from_numpy(np.stack([it['img'] for it in items])).double() / 127.5 - 1
        return voxels, images.reshape(len(items), -1)

    (x, y), (xv, yv), (xt, yt) = arrays('train'), arrays('val'), arrays('test')
    y_mean = y.mean(0)
    gram = x @ x.T
    best = None
    for lam in penalties:
        alpha = torch.linalg.solve(gram + lam * torch.eye(len(x), dtype=x.dtype), y - y_mean)
        pred = xv @ (x.T @ alpha) + y_mean
        pcc = torch.corrcoef(torch.stack([pred.flatten(), yv.flatten()]))[0, 1].item()
        if best is None or pcc > best[0]:
            best = (pcc, lam, x.T @ alpha)
    side = int(np.sqrt(yt.shape[1]))
    pred = ((xt @ best[2] + y_mean).clamp(-1, 1)).float().reshape(-1, 1, 1, side, side)
    outs = [dict(pred=p, gt=g.float().reshape(1, side, side)) for p, g in zip(pred, yt)]
    found = {'penalty': best[1], 'val_pcc': best[0]}
    for metric_cfg in cfg.test_evaluator:          # the rows' own test metrics
        metric = METRICS.build(metric_cfg)
        metric.process({}, outs)
        found |= metric.compute_metrics(metric.results)
    return found


def summarize(results: ResultsFile) -> str:
    lines = ['# CMVDM on the simulated-fMRI demo', '',
             'Paper (GOD, recollection, unverified): 50-way top-1 30.1 %, PCC 0.768, SSIM 0.632 '
             'against MinD-Vis 26.6 % / 0.532 / 0.527. Here: simulated fMRI of Fashion-MNIST '
             'stimuli (a simulator, not a brain), 200 test stimuli, one sample per fMRI, mean '
             '+- std over the seeds run; identification judged by LeNet-5 on Fashion-MNIST.', '',
             '| row | seeds | PCC | SSIM (grey, Gaussian 1.5) | 2-way top-1 | 10-way top-1 | '
             'FD, LeNet-5 fc84 features (lower is better) |',
             '|---|---|---|---|---|---|---|']
    for row, (_, description) in ROWS.items():   # the floor first
        runs = list(results.data.get('runs', {}).get(row, {}).values())
        if not runs:
            continue
        cells = []
        for m in METRICS:
            v = [r[m] for r in runs]
            cells.append(f'{np.mean(v):.3f}' + (f' +- {np.std(v):.3f}' if len(v) > 1 else ''))
        lines.append(f'| {row}: {description} | {len(runs)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def draw(checkpoints: dict[str, tuple[str, list[str]]], items: int = 10) -> None:
    """Stimulus | each row's reconstruction of one test stimulus per class (the test set holds
    20 per class, in class order)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, load_checkpoint

    import projects.cmvdm  # noqa: F401
    from mmext.registry import MODELS
    init_default_scope('mmpretrain')
    columns = {}
    for row, (checkpoint, opts) in checkpoints.items():
        cfg = Config.fromfile(REPO / CFG / ROWS[row][0])
        parser = argparse.ArgumentParser()
        parser.add_argument('--options', nargs='+', action=DictAction)
        kept = [o for o in opts if o.startswith('model.')]
        if kept:
            cfg.merge_from_dict(parser.parse_args(['--options', *kept]).options)
        model = MODELS.build(cfg.model).eval()
        model.init_weights()
        load_checkpoint(model, checkpoint, map_location='cpu')
        loader = dict(cfg.test_dataloader)
        loader['dataset'] = dict(loader['dataset'], indices=list(range(0, 20 * items, 20)))
        loader['batch_size'] = items
        batch = next(iter(Runner.build_dataloader(loader)))
        with torch.no_grad():
            outs = model(**batch, mode='predict')
        columns['stimulus'] = [o['gt'][0] for o in outs]
        columns[row] = [o['pred'][0, 0] for o in outs]
    fig, axes = plt.subplots(items, len(columns), figsize=(1.2 * len(columns), 1.2 * items))
    for j, (name, images) in enumerate(columns.items()):
        for i, image in enumerate(images):
            axes[i, j].imshow(((image + 1) / 2).clamp(0, 1).numpy(), cmap='gray', vmin=0, vmax=1)
            axes[i, j].axis('off')
        axes[0, j].set_title(name, fontsize=7)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)
    plt.close(fig)


def main():
    args = seeds_parser(__doc__.split('\n')[0]).parse_args()
    if not (REPO / JUDGE).is_file():
        train(CFG + 'judge_lenet5_fashion-mnist.py', REPO / 'work_dirs/judge_lenet5_fashion-mnist',
              [], 'judge')
    path = Path('/tmp/cmvdm_quick.json') if args.quick else RESULTS   # quick: not a result
    results = ResultsFile(path, path.with_suffix('.md'))
    if not args.quick and not results.has('ridge', 0):   # deterministic: one run
        results.record('ridge', 0, ridge_floor(), summarize)
    for k, seed in enumerate(args.seeds):
        checkpoints = chain(seed, args.quick)
        for row, (checkpoint, opts) in checkpoints.items():
            if results.has(row, seed):
                continue
            results.record(row, seed, evaluate(row, checkpoint, opts, seed, args.quick),
                           summarize)
        if k == 0 and not args.quick:
            draw(checkpoints)


if __name__ == '__main__':
    main()
