"""Miniature reproduction of FADM's claim on the moving Fashion-MNIST demo: the coarse animator
alone, coarse + FADM, coarse + FADM without attributes, per seed.

    python benchmarks/fadm.py                     # seeds 0 and 1
    python benchmarks/fadm.py --seeds 0 --quick   # a few iterations of each (plumbing check)
    python benchmarks/fadm.py --seeds 0 --long    # adds the refiner trained 3x as long

Per seed: the keypoint animator (configs/fadm/animator_demo_moving-fashion.py), then FADM with
and without attributes, with a full-resolution warp scale and with the coarse frame as a
denoiser input (diagnosis rows), on that frozen animator; each evaluated on the test sequences by
``tools/test.py`` (L1, PSNR, SSIM grey Gaussian 1.5, temporal error; the coarse row is the same
run's coarse frames). Results accumulate in ``benchmarks/results/fadm.json`` (table beside it);
a diagnosis per seed (the coarse frame, AGCN's condition image and the denoiser's x0 estimate
at several noise levels, against the true frame); seed 0 also draws
``projects/fadm/refinement.png`` (source | driving | coarse | refined
for one frame of each of 8 test sequences) and ``projects/fadm/sequence.gif`` (one sequence).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from ablation_runs import REPO, ResultsFile, seeds_parser, train

CFG = 'configs/fadm/'
RESULTS = Path(__file__).parent / 'results/fadm.json'
FIGURE = REPO / 'projects/fadm/refinement.png'
GIF = REPO / 'projects/fadm/sequence.gif'
ROWS = {  # row: description
    'source': 'source frame as the prediction (no animation: the floor)',
    'coarse': 'coarse animator alone',
    'fadm': 'coarse + FADM',
    'fadm_no_attr': 'coarse + FADM without attributes',
    'fadm_fullres': 'coarse + FADM, warp scales up to full resolution (diagnosis)',
    'fadm_long': 'coarse + FADM, 6,000 iterations (diagnosis, over the 30-minute budget)',
    'fadm_coarse_input': 'coarse + FADM, the denoiser also sees the coarse frame (diagnosis)',
}
CONFIGS = {'fadm': 'fadm_demo_moving-fashion.py',
           'fadm_no_attr': 'fadm-no-attr_demo_moving-fashion.py',
           'fadm_fullres': 'fadm-fullres_demo_moving-fashion.py',
           'fadm_coarse_input': 'fadm-coarse-input_demo_moving-fashion.py'}
METRICS = ('l1', 'psnr', 'ssim_grey-gauss1.5', 'tc_l1')


def last_checkpoint(work_dir: Path) -> str:
    return (work_dir / 'last_checkpoint').read_text().strip()


LONG = 'fadm-long_demo_moving-fashion.py'


def chain(seed: int, quick: bool, long: bool = False) -> dict[str, tuple[str, list[str]]]:
    """Train the animator and the refiners for ``seed``; -> ``{row: (checkpoint, options)}``.
    ``long`` adds the refiner trained to 6,000 iterations, resumed from the demo refiner's
    last checkpoint."""
    root = REPO / f'work_dirs/benchmarks/fadm{"_quick" if quick else ""}' / f'seed{seed}'
    opts = [f'randomness.seed={seed}']
    if quick:
        opts += ['train_cfg.max_iters=3', 'train_cfg.val_interval=3',
                 'default_hooks.checkpoint.interval=3', 'val_dataloader.dataset.num_sequences=1',
                 'val_dataloader.dataset.sequence_length=2']

    def run(config, name, extra):
        work = root / name
        if not (work / 'last_checkpoint').is_file():
            train(CFG + config, work, opts + extra, f'{name} seed {seed}')
        return last_checkpoint(work)

    animator = run('animator_demo_moving-fashion.py', 'animator', [])
    refiner = [f'model.animator_checkpoint={animator}'] + (
        ['model.sampling.num_steps=3'] if quick else [])
    rows = {row: (run(config, row, refiner), refiner) for row, config in CONFIGS.items()}
    if long:
        resume = ['resume=True', f"load_from={rows['fadm'][0]}"] + (
            ['train_cfg.max_iters=6', 'train_cfg.val_interval=6'] if quick else [])
        rows['fadm_long'] = (run(LONG, 'fadm_long', refiner + resume), refiner)
    return rows


def evaluate(row: str, checkpoint: str, opts: list[str], seed: int, quick: bool) -> dict:
    work = REPO / f'work_dirs/benchmarks/fadm{"_quick" if quick else ""}' / f'seed{seed}' / \
        f'{row}_test'
    extra = ['test_dataloader.dataset.num_sequences=2', 'test_dataloader.dataset.sequence_length=2',
             'model.sampling.num_steps=3'] if quick else []
    config = LONG if row == 'fadm_long' else CONFIGS[row]
    done = subprocess.run([sys.executable, 'tools/test.py', CFG + config, checkpoint,
                           '--work-dir', str(work), '--cfg-options', *opts, *extra],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    keys = [k for m in METRICS for k in (m, f'coarse_{m}')] + ['num_steps']
    found = {k: re.findall(rf'anim/{re.escape(k)}: ([-0-9.]+)', done.stdout) for k in keys}
    if done.returncode != 0 or not all(found.values()):
        raise RuntimeError(f'{row} seed {seed} test failed:\n{done.stdout[-3000:]}')
    return {k: float(v[-1]) for k, v in found.items()} | {'checkpoint': checkpoint}


def summarize(results: ResultsFile) -> str:
    lines = ['# FADM on the moving Fashion-MNIST demo', '',
             'The paper claims FADM improves FOMM and face-vid2vid on talking-head benchmarks '
             '(its numbers unverified). Here: 20 test sequences of 6 frames (Fashion-MNIST test '
             'items under known pose and expression warps), 32 x 32 grey, DDIM eta 1 with one '
             'noise per sequence; mean +- std over seeds. L1 on [0, 1] (lower is better), PSNR '
             'dB, SSIM grey Gaussian 1.5, temporal error (mean |generated minus true frame-to-'
             'frame change|, lower is better).', '',
             '| row | seeds | L1 | PSNR | SSIM | temporal error | DDIM steps |',
             '|---|---|---|---|---|---|---|']
    runs = results.data.get('runs', {})
    for row, description in ROWS.items():
        if row == 'coarse':       # the coarse frames of the FADM runs (same animator per seed)
            source, prefix = runs.get('fadm', {}), 'coarse_'
        else:
            source, prefix = runs.get(row, {}), ''
        done = list(source.values())
        if not done:
            continue
        cells = []
        for m in METRICS:
            v = [r[prefix + m] for r in done]
            cells.append(f'{np.mean(v):.4f}' + (f' +- {np.std(v):.4f}' if len(v) > 1 else ''))
        steps = '-' if row in ('coarse', 'source') else str(int(done[0]['num_steps']))
        seeds = 'any' if row == 'source' else str(len(done))   # the floor needs no seed
        lines.append(f'| {description} | {seeds} | ' + ' | '.join(cells) + f' | {steps} |')
    diagnosis = runs.get('diagnosis', {})
    if diagnosis:
        keys = list(next(iter(diagnosis.values())))
        lines += ['', 'Where the refiner (coarse + FADM) loses, on 48 test frames: L1 on [0, 1] '
                  "to the true frame of the coarse frame, of AGCN's condition image, and of the "
                  "denoiser's x0 estimate from the true frame noised to step t.", '',
                  '| seed | ' + ' | '.join(keys) + ' |', '|---' * (len(keys) + 1) + '|']
        lines += [f'| {seed} | ' + ' | '.join(f'{run[k]:.4f}' for k in keys) + ' |'
                  for seed, run in diagnosis.items()]
        for name, label in (('diagnosis_long', '6,000 iterations'),
                            ('diagnosis_coarse_input', 'the denoiser also sees the coarse frame')):
            lines += [f'| {seed}, {label} | ' + ' | '.join(f'{run[k]:.4f}' for k in keys)
                      + ' |' for seed, run in runs.get(name, {}).items()]
    return '\n'.join(lines)


def _model_and_batch(checkpoint: str, opts: list[str], frames: int, row: str = 'fadm'):
    """The trained FADM of ``checkpoint`` (eval mode; built by ``row``'s config) and the first
    ``frames`` test frames."""
    import argparse as ap

    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, load_checkpoint

    import projects.fadm  # noqa: F401
    from mmext.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(REPO / CFG / CONFIGS[row])
    parser = ap.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--options', *opts]).options)
    cfg.model.animator_checkpoint = None              # the FADM checkpoint carries it
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, checkpoint, map_location='cpu')
    loader = dict(cfg.test_dataloader, batch_size=frames, num_workers=0)
    return model, next(iter(Runner.build_dataloader(loader)))


def source_as_prediction() -> dict:
    """The metrics of the source frame taken as the animated frame (it does not depend on a
    seed: the test sequences are fixed): what any animator must beat."""
    from mmengine.config import Config

    from mmext.evaluation import AnimationMetric
    from mmext.registry import DATASETS
    cfg = Config.fromfile(REPO / CFG / CONFIGS['fadm'])
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    metric = AnimationMetric()
    metric.process({}, [dict(pred=item['source'][None], gt=item['driving'],
                             sequence_id=item['sequence_id'], frame=item['frame'])
                        for item in (dataset[i] for i in range(len(dataset)))])
    return metric.compute_metrics(metric.results)


def diagnose(checkpoint: str, opts: list[str], row: str = 'fadm',
             steps=(0, 10, 30, 60, 90, 99)) -> dict:
    """Where the refiner loses to its animator, on 48 test frames (L1 on [0, 1] to the true
    frame): the coarse frame; AGCN's condition image (at the first sampling step); the
    denoiser's x0 estimate from the true frame noised to step t (one noise draw)."""
    import torch

    from mmext.diffusion.training import noisy_batch
    model, batch = _model_and_batch(checkpoint, opts, 48, row)
    with torch.no_grad():
        source, gt = batch['source'], batch['driving']
        attrs = model.attributes(batch['source_attributes'], batch['driving_attributes'])
        coarse = model.coarse(source, gt)
        out = dict(coarse=float((coarse - gt).abs().mean() / 2))
        last = torch.full((len(gt), ), steps[-1], dtype=torch.long)
        condition, _ = model.agcn(coarse, coarse, last, attrs)
        out['condition'] = float((condition - gt).abs().mean() / 2)
        scheduler = model.scheduler
        alphas = scheduler.alphas_cumprod
        for t in steps:
            ts = torch.full((len(gt), ), t, dtype=torch.long)
            noisy = noisy_batch(scheduler, gt, timesteps=ts,
                                generator=torch.Generator().manual_seed(t))
            condition, _ = model.agcn(coarse, coarse, ts, attrs)
            pred = model.denoise(noisy.noisy, ts, condition, coarse)
            kind = scheduler.config.prediction_type
            a = alphas[t]
            if kind == 'sample':
                x0 = pred
            elif kind == 'epsilon':
                x0 = (noisy.noisy - (1 - a).sqrt() * pred) / a.sqrt()
            else:                                       # v: x0 = sqrt(a) x_t - sqrt(1-a) v
                x0 = a.sqrt() * noisy.noisy - (1 - a).sqrt() * pred
            out[f'x0_at_t{t}'] = float((x0.clamp(-1, 1) - gt).abs().mean() / 2)
    return out


def draw(checkpoint: str, opts: list[str], sequences: int = 8) -> None:
    """The picture strip and the animated GIF of the first seed's FADM."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    from PIL import Image

    model, batch = _model_and_batch(checkpoint, opts, 6 * sequences)
    outs = model(**batch, mode='predict')
    by_seq = {}
    for o in outs:
        by_seq.setdefault(o['sequence_id'], []).append(o)
    columns = ('source', 'driving', 'coarse', 'refined')

    def images(o):
        return [o['source'][0], o['gt'][0], o['coarse'][0], o['pred'][0, 0]]

    fig, axes = plt.subplots(sequences, 4, figsize=(4.8, 1.2 * sequences))
    for i, seq in enumerate(list(by_seq.values())[:sequences]):
        o = seq[-1]                                    # the last frame: the largest motion
        for j, image in enumerate(images(o)):
            axes[i, j].imshow(((image + 1) / 2).clamp(0, 1).numpy(), cmap='gray', vmin=0,
                              vmax=1)
            axes[i, j].axis('off')
    for j, name in enumerate(columns):
        axes[0, j].set_title(name, fontsize=7)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)
    plt.close(fig)
    frames = []
    for o in sorted(by_seq[next(iter(by_seq))], key=lambda o: o['frame']):
        row = torch.cat(images(o), 1)                 # source | driving | coarse | refined
        pixels = (((row + 1) / 2).clamp(0, 1) * 255).byte().numpy()
        frames.append(Image.fromarray(pixels).resize((row.shape[1] * 4, row.shape[0] * 4),
                                                     Image.NEAREST))
    frames[0].save(GIF, save_all=True, append_images=frames[1:], duration=250, loop=0)


def main():
    parser = seeds_parser(__doc__.split('\n')[0])
    parser.add_argument('--long', action='store_true',
                        help='also the refiner trained to 6,000 iterations (diagnosis row; '
                             'about 30 more minutes per seed)')
    args = parser.parse_args()
    path = Path('/tmp/fadm_quick.json') if args.quick else RESULTS   # quick: not a result
    results = ResultsFile(path, path.with_suffix('.md'))
    if not results.has('source', 'all'):
        results.record('source', 'all', source_as_prediction(), summarize)
    for seed in args.seeds:
        checkpoints = chain(seed, args.quick, args.long)
        for row, (checkpoint, opts) in checkpoints.items():
            if not results.has(row, seed):
                results.record(row, seed, evaluate(row, checkpoint, opts, seed, args.quick),
                               summarize)
        if not results.has('diagnosis', seed):
            results.record('diagnosis', seed, diagnose(*checkpoints['fadm']), summarize)
        if not results.has('diagnosis_coarse_input', seed):
            results.record('diagnosis_coarse_input', seed,
                           diagnose(*checkpoints['fadm_coarse_input'], 'fadm_coarse_input'),
                           summarize)
        if args.long and not results.has('diagnosis_long', seed):
            results.record('diagnosis_long', seed, diagnose(*checkpoints['fadm_long']),
                           summarize)
        if seed == 0 and not args.quick:             # the README's pictures are seed 0's
            draw(*checkpoints['fadm'])


if __name__ == '__main__':
    main()
