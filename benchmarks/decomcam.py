"""Decom-CAM against pytorch-grad-cam's methods: the stratified protocol on single-item Fashion
Scenes canvases for two classifier seeds, and every method's time per image side by side.

    python benchmarks/decomcam.py                    # every method x seeds 0 and 1
    python benchmarks/decomcam.py --methods DecomCAM GradCAM --seeds 0

Classifiers: ``configs/demo/resnet18-w32_1xb64-20e_fashion-scene-items.py`` trained with
``tools/train.py`` (seed 0 in its default work dir, seed 1 with ``randomness.seed=1`` in
``<work dir>_seed1``; this script trains a missing one). Protocol:
``configs/decomcam/decomcam_resnet18-w32_fashion-scene-items.py`` through ``runner.test()``
(what ``tools/test.py`` runs) with ``model.cam`` replaced per method: saliency of the
ground-truth class at ``backbone.layer4`` (8 x 8) on the 500 validation canvases; Average Drop,
Increase in Confidence, deletion / insertion AUC and the energy pointing game on the item mask,
per subset (correct / wrong top-1, quintiles q1-q5 of the ground-truth probability) and
macro-averaged. Every method on one checkpoint sees the same subsets.

Time: each method maps the same 32 canvases in batches of 16 (128 px), one method after the
other in this process; seconds per image and the ratio to Score-CAM.

Runs accumulate in ``benchmarks/results/decomcam.json`` (a finished method x seed is not rerun)
with a markdown table beside it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ablation_runs import REPO, ResultsFile

CLASSIFIER = 'configs/demo/resnet18-w32_1xb64-20e_fashion-scene-items.py'
PROTOCOL = 'configs/decomcam/decomcam_resnet18-w32_fashion-scene-items.py'
RESULTS = Path(__file__).parent / 'results/decomcam.json'
METHODS = ('DecomCAM', 'GradCAM', 'GradCAMPlusPlus', 'XGradCAM', 'LayerCAM', 'HiResCAM',
           'EigenCAM', 'ScoreCAM', 'RandomMap')
MEASURES = {  # name in the table, True when higher is better
    'average_drop': ('AD', False), 'increase_in_confidence': ('IC', True),
    'deletion_auc': ('Del', False), 'insertion_auc': ('Ins', True),
    'energy_pointing_game': ('EPG', True)}
SUBSETS = ('correct', 'wrong', 'q1', 'q2', 'q3', 'q4', 'q5')
DECOM = dict(type='DecomCAM', num_components=10, blur_sigma=6.0)
PAPER = ('The paper (Yang et al. 2023) claims, in its abstract, that Decom-CAM beats Grad-CAM, '
         'Grad-CAM++, Score-CAM and other methods at every accuracy level (subsets by how well '
         'the model classifies the image); none of its numbers is confirmed here, and ImageNet is '
         'not on this machine. This is the same protocol on 500 single-item Fashion Scenes '
         'canvases with a classifier trained here.')


def register_random_map() -> None:
    """``RandomMap``: the control row, uniform noise at the target layer's resolution (8 x 8)
    upsampled like every CAM; a measure that does not separate the methods from it says
    nothing. Registered for this benchmark only."""
    from pytorch_grad_cam.base_cam import BaseCAM

    from mmext.registry import CAM_METHODS

    class RandomMap(BaseCAM):
        def __init__(self, model, target_layers, reshape_transform=None):
            super().__init__(model, target_layers, reshape_transform, uses_gradients=False)
            self.rng = np.random.default_rng(0)

        def get_cam_image(self, input_tensor, target_layer, targets, activations, grads,
                          eigen_smooth=False):
            return self.rng.random((activations.shape[0], *activations.shape[2:]))

    if 'RandomMap' not in CAM_METHODS.module_dict:
        CAM_METHODS.register_module(name='RandomMap', module=RandomMap)


def checkpoint(seed: int) -> Path:
    work_dir = REPO / 'work_dirs' / Path(CLASSIFIER).stem
    if seed:
        work_dir = work_dir.with_name(f'{work_dir.name}_seed{seed}')
    path = work_dir / 'epoch_20.pth'
    if not path.is_file():
        print(f'training the classifier, seed {seed} -> {work_dir}', flush=True)
        subprocess.run([sys.executable, 'tools/train.py', CLASSIFIER, '--work-dir', str(work_dir),
                        '--cfg-options', f'randomness.seed={seed}'], cwd=REPO, check=True)
    return path


def protocol_config(method: str, seed: int, ckpt: Path, work_dir: Path):
    from mmengine.config import Config
    cfg = Config.fromfile(REPO / PROTOCOL)
    cam = dict(DECOM) if method == 'DecomCAM' else dict(type=method)
    cfg.model.cam = dict(cam, target_layers=['backbone.layer4'])
    cfg.load_from = str(ckpt)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'decomcam_bench_{method}_seed{seed}'
    cfg.test_dataloader.dataset.data_root = str(REPO / 'data/fashion_scene_items')
    return cfg


def evaluate(method: str, seed: int, ckpt: Path) -> dict:
    from mmengine.runner import Runner
    work_dir = REPO / 'work_dirs/benchmarks/decomcam' / f'{method}_seed{seed}'
    runner = Runner.from_cfg(protocol_config(method, seed, ckpt, work_dir))
    start = time.time()
    metrics = runner.test()
    return dict({k.removeprefix('cam/'): float(v) for k, v in metrics.items()},
                seconds=round(time.time() - start, 1), checkpoint=str(ckpt))


def time_methods(methods, ckpt: Path, images: int = 32, batch: int = 16) -> dict:
    """Seconds per image of each method on the same canvases, one after the other."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    from mmext.cam import CAM_METHODS, ClassLogitTarget, resolve_target_layers
    from mmext.cam.evaluation import ClassProbabilities
    from mmext.datasets import FashionSceneItems
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(REPO / CLASSIFIER)
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(ckpt, map_location='cpu')['state_dict'])
    model.eval()
    data = FashionSceneItems(data_root=str(REPO / 'data/fashion_scene_items'), split='val',
                             pipeline=cfg.test_pipeline, indices=images)
    batch_data = dict(inputs=[data[i]['inputs'] for i in range(images)],
                      data_samples=[data[i]['data_samples'] for i in range(images)])
    packed = model.data_preprocessor(batch_data, False)
    inputs = packed['inputs']
    labels = [int(s.gt_label) for s in packed['data_samples']]
    probabilities = ClassProbabilities(model)
    layers = resolve_target_layers(model, ['backbone.layer4'])
    out = {}
    for method in methods:
        kwargs = {k: v for k, v in DECOM.items() if k != 'type'} if method == 'DecomCAM' else {}
        start = time.perf_counter()
        with CAM_METHODS.get(method)(model=probabilities, target_layers=layers, **kwargs) as cam:
            for i in range(0, images, batch):
                cam(inputs[i:i + batch], [ClassLogitTarget(c) for c in labels[i:i + batch]])
        out[method] = (time.perf_counter() - start) / images
        print(f'{method}: {out[method]:.4f} s per image', flush=True)
    return dict(seconds_per_image=out, images=images, batch=batch,
                input=list(inputs.shape[1:]), torch_threads=torch.get_num_threads(),
                checkpoint=str(ckpt))


def summarize(results: ResultsFile) -> str:
    runs = results.data.get('runs', {})
    methods = [m for m in METHODS if runs.get(m)]
    lines = ['# Decom-CAM protocol, single-item Fashion Scenes (500 val canvases, 128 px)', '',
             PAPER, '',
             'Mean of the classifier seeds run (AD, Del: lower is better; IC, Ins, EPG: higher). '
             'macro-acc averages the correct and wrong subsets, macro-conf the five quintiles.',
             '', '| method | seeds | ' + ' | '.join(
                 f'{short} macro-acc | {short} macro-conf' for short, _ in MEASURES.values()) +
             ' |', '|---' * (2 + 2 * len(MEASURES)) + '|']

    def mean(method, key):
        values = [r[key] for r in runs[method].values() if key in r]
        return float(np.mean(values)) if values else float('nan')

    for m in methods:
        cells = []
        for measure in MEASURES:
            cells += [f"{mean(m, f'macro_accuracy/{measure}'):.3f}",
                      f"{mean(m, f'macro_confidence/{measure}'):.3f}"]
        lines.append(f'| {m} | {len(runs[m])} | ' + ' | '.join(cells) + ' |')
    if 'DecomCAM' in runs and len(methods) > 1:
        lines += ['', 'Where Decom-CAM beats each baseline, per subset: the measures on which '
                  'its seed-mean is better (of AD, IC, Del, Ins, EPG).', '',
                  '| baseline | ' + ' | '.join(SUBSETS) + ' |', '|---' * (1 + len(SUBSETS)) + '|']
        for m in methods[1:]:
            cells = []
            for subset in SUBSETS:
                won = []
                for measure, (short, higher) in MEASURES.items():
                    ours, theirs = (mean(x, f'{subset}/{measure}') for x in ('DecomCAM', m))
                    if (ours > theirs) if higher else (ours < theirs):
                        won.append(short)
                cells.append(f"{len(won)}/5 {' '.join(won)}".strip())
            lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
        first = next(iter(runs['DecomCAM'].values()))
        lines += ['', 'Images per subset (seed 0): ' + ', '.join(
            f"{s} {int(first[f'{s}/images'])}" for s in SUBSETS if f'{s}/images' in first)]
    timing = results.data.get('timing')
    if timing:
        t = timing['seconds_per_image']
        score = t.get('ScoreCAM')
        lines += ['', f"Time per image, {timing['images']} canvases of {timing['input']} in "
                  f"batches of {timing['batch']}, {timing['torch_threads']} CPU threads, one "
                  'method after the other in one process:', '',
                  '| method | s / image | x Score-CAM |', '|---|---|---|']
        for m, s in t.items():
            ratio = f'{s / score:.3f}' if score else '-'
            lines.append(f'| {m} | {s:.4f} | {ratio} |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--skip-timing', action='store_true')
    args = parser.parse_args()
    os.environ.setdefault('TQDM_DISABLE', '1')  # Score-CAM's bar per image
    sys.path.insert(0, str(REPO))
    import mmext  # noqa: F401  (registers the models, datasets, metrics)
    register_random_map()
    results = ResultsFile(RESULTS, RESULTS.with_suffix('.md'))
    ckpts = {seed: checkpoint(seed) for seed in args.seeds}
    if not args.skip_timing:
        results.data['timing'] = time_methods(args.methods, ckpts[args.seeds[0]])
        results.save(summarize(results))
    for seed in args.seeds:
        for method in args.methods:
            if results.has(method, seed):
                print(f'{method} seed {seed}: done before, kept', flush=True)
                continue
            print(f'{method} seed {seed}: evaluating', flush=True)
            results.record(method, seed, evaluate(method, seed, ckpts[seed]), summarize)


if __name__ == '__main__':
    main()
