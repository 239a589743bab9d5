"""Saliency maps of real ImageNet classifiers on the real photos installed here.

    python tools/analysis/cam_photos.py                         # every photo, both models
    python tools/analysis/cam_photos.py --photos chelsea dog --models mobilenet_v2 \
        --methods GradCAM DecomCAM --out-dir work_dirs/cam_photos

For each photo and model: the top-1 class (the map's target), a row of overlays (one per
method) and a row with Decom-CAM's sub-maps and their weights, written to
``OUT_DIR/<model>/<photo>.png``; ``OUT_DIR/summary.json`` lists the predictions and each
method's seconds per image.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmext.cam import CAM_METHODS, ClassLogitTarget, resolve_target_layers  # noqa: E402
from mmext.cam.imagenet import imagenet_classifier  # noqa: E402
from mmext.datasets.photos import missing_photo_sources, real_photos  # noqa: E402

MODELS = ('mobilenet_v2', 'efficientnet_lite0')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--photos', nargs='+', help='photo names (default: all available)')
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS)
    parser.add_argument('--methods', nargs='+', default=['GradCAM', 'ScoreCAM', 'DecomCAM'])
    parser.add_argument('--num-components', type=int, default=10, help='Decom-CAM: n')
    parser.add_argument('--out-dir', type=Path, default=Path('work_dirs/cam_photos'))
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods if m not in CAM_METHODS.module_dict]
    if unknown:
        parser.error(f'unknown --methods {unknown}; known: {sorted(CAM_METHODS.module_dict)}')
    return args


def draw(crop, title, maps: dict, sub_maps, weights, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    columns = max(1 + len(maps), 5)
    rows = 1 if sub_maps is None else 1 + int(np.ceil(len(sub_maps) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    axes[0, 0].imshow(crop)
    axes[0, 0].set_title(title, fontsize=7)
    for ax, (name, saliency) in zip(axes[0, 1:], maps.items()):
        ax.imshow(crop)
        ax.imshow(saliency, cmap='jet', alpha=0.5)
        ax.set_title(name, fontsize=8)
    if sub_maps is not None:
        for i, ax in enumerate(axes[1:].flat[:len(sub_maps)]):
            ax.imshow(crop)
            ax.imshow(sub_maps[i], cmap='jet', alpha=0.5)
            ax.set_title(f'Decom-CAM M{i + 1}  w={weights[i]:.2f}', fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('TQDM_DISABLE', '1')  # Score-CAM's bar per batch of channels
    for line in missing_photo_sources():
        print(f'note: not included: {line}')
    photos = real_photos(args.photos)
    summary = dict(methods=args.methods, images={}, seconds_per_image={})
    for model_name in args.models:
        classifier = imagenet_classifier(model_name)
        layers = resolve_target_layers(classifier.model, [classifier.target_layer])
        seconds = {m: 0.0 for m in args.methods}
        for photo, rgb in photos.items():
            x, crop = classifier.preprocess(rgb)
            with torch.no_grad():
                prob = classifier.model(x).softmax(-1)[0]
            top = int(prob.argmax())
            label = classifier.categories[top]
            maps, sub_maps, weights = {}, None, None
            for method in args.methods:
                kwargs = dict(model=classifier.model, target_layers=layers)
                if method == 'DecomCAM':
                    kwargs['num_components'] = args.num_components
                start = time.perf_counter()
                with CAM_METHODS.get(method)(**kwargs) as cam:
                    maps[method] = cam(x, [ClassLogitTarget(top)])[0]
                    if method == 'DecomCAM':
                        sub_maps, weights = cam.last_sub_maps[0], cam.last_weights[0]
                seconds[method] += time.perf_counter() - start
            path = args.out_dir / model_name / f'{photo}.png'
            draw(crop, f'{model_name}: {label} ({float(prob[top]):.2f})', maps, sub_maps,
                 weights, path)
            summary['images'].setdefault(photo, {})[model_name] = dict(
                top1=label, index=top, probability=round(float(prob[top]), 4))
            print(f'{model_name} {photo}: {label} ({float(prob[top]):.2f}) -> {path}')
        summary['seconds_per_image'][model_name] = {
            m: round(s / len(photos), 3) for m, s in seconds.items()}
        print(model_name, 'seconds per image:', summary['seconds_per_image'][model_name])
    summary['torch_threads'] = torch.get_num_threads()
    (args.out_dir / 'summary.json').write_text(json.dumps(summary, indent=1))
    print(f'wrote {args.out_dir}/summary.json')


if __name__ == '__main__':
    main()
