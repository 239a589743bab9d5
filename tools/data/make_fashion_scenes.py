"""Generate the Fashion Scenes detection + segmentation sets from Fashion-MNIST.

    python tools/data/make_fashion_scenes.py                  # data/fashion_scenes, seed 0
    python tools/data/make_fashion_scenes.py --num-train 200 --num-val 50 --out data/tiny

An existing set with the same parameters is left as it is (use --force to rewrite).
"""
import argparse
import json
from dataclasses import asdict, fields
from pathlib import Path

from mmext.datasets import SceneConfig, make_fashion_scenes
from mmext.datasets.fashion_scenes import ANNOTATION_FORMAT


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/fashion_scenes', help='output folder')
    parser.add_argument('--fashion-mnist', default=None,
                        help='folder of the Fashion-MNIST IDX files (default: Debian path or '
                        '$MMEXT_FASHION_MNIST)')
    parser.add_argument('--force', action='store_true', help='rewrite an existing set')
    for f in fields(SceneConfig):
        parser.add_argument('--' + f.name.replace('_', '-'), type=type(f.default),
                            default=f.default)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = SceneConfig(**{f.name: getattr(args, f.name) for f in fields(SceneConfig)})
    meta = Path(args.out) / 'meta.json'
    if not args.force and meta.is_file():
        written = json.loads(meta.read_text())
        same = {k: v for k, v in written.items() if k not in ('classes', 'format')} == asdict(cfg)
        if same and written.get('format') == ANNOTATION_FORMAT:
            print(f'{args.out} is up to date (same parameters); --force rewrites it')
            return
        if same:
            print(f'{args.out}: annotation format {written.get("format", 1)} -> '
                  f'{ANNOTATION_FORMAT} (item tints added); rewriting (the images stay the same)')
    out = make_fashion_scenes(args.out, cfg, args.fashion_mnist)
    print(f'wrote {cfg.num_train} train and {cfg.num_val} val canvases to {out}')


if __name__ == '__main__':
    main()
