"""Build the demo CLIP (v2): the stand-in CLIP of the demos, pretrained here on captioned
Fashion-MNIST train items of all 10 classes (``mmext/clip/demo_clip_training.py``).

    python tools/clip/train_demo_clip.py                  # into the cache (what 'mmext:demo-clip' loads)
    python tools/clip/train_demo_clip.py --out work_dirs/my_clip --iters 100 --seed 1

Without ``--out`` the folder is the cache's (``$MMEXT_CACHE/demo_clip/v2-<recipe hash>``), built
only if missing (``--force`` rebuilds it); configs name it ``model_name='mmext:demo-clip'``, and
``OpenCLIPModel`` builds it on first use too. With ``--out`` the folder is written there and
loads with ``OpenCLIPModel('local-dir:<out>')``. The figures of the build are measured by
``benchmarks/demo_clip.py``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # mmext from a plain clone too
os.environ.setdefault('HF_HUB_OFFLINE', '1')

from mmext.clip.demo_clip_training import (  # noqa: E402
    DemoCLIPRecipe,
    demo_clip_folder,
    ensure_demo_clip,
    is_complete,
    train_demo_clip,
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, help='output folder (default: the cache)')
    parser.add_argument('--force', action='store_true', help='rebuild a cached folder')
    parser.add_argument('--fashion-mnist', help='folder of the Fashion-MNIST IDX files')
    for f in fields(DemoCLIPRecipe):
        parser.add_argument('--' + f.name.replace('_', '-'), type=type(f.default),
                            default=f.default, help=f'recipe (default {f.default})')
    return parser.parse_args()


def main():
    args = parse_args()
    recipe = DemoCLIPRecipe(**{f.name: getattr(args, f.name) for f in fields(DemoCLIPRecipe)})
    if args.out is None:
        folder = demo_clip_folder(recipe)
        if args.force:
            shutil.rmtree(folder, ignore_errors=True)
        elif is_complete(folder):
            print(f'the demo CLIP is built: {folder} (--force rebuilds it)')
            return
        if args.fashion_mnist:
            os.environ['MMEXT_FASHION_MNIST'] = args.fashion_mnist
        folder = ensure_demo_clip(recipe)
    else:
        if args.out.exists() and any(args.out.iterdir()) and not args.force:
            raise SystemExit(f'{args.out} is not empty; --force overwrites it')
        folder = train_demo_clip(args.out, recipe, fashion_mnist_root=args.fashion_mnist)
    print(f'demo CLIP in {folder} (OpenCLIPModel("local-dir:{folder}"))')


if __name__ == '__main__':
    main()
