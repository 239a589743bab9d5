"""Write CoOp-style split files for the two datasets of the protocol that CoOp reads without one,
so that ``mmext.FewShotDataset`` reads all 11 the same way.

    python tools/data/make_coop_split.py imagenet data/imagenet
    python tools/data/make_coop_split.py fgvc-aircraft data/fgvc_aircraft

- ImageNet, as CoOp's DATASETS.md lays it out: ``images/train/<wnid>/*``, ``images/val/<wnid>/*``
  and ``classnames.txt`` (``<wnid> <name>`` per line; labels in its order). Train is the train
  folder, test the val folder (CoOp evaluates ImageNet on val), val is empty.
- FGVC-Aircraft: ``images/<id>.jpg``, ``variants.txt`` (labels in its order) and
  ``images_variant_{train,val,test}.txt`` (``<id> <variant>`` per line).

Writes ``split_zhou_ImageNet.json`` / ``split_zhou_FGVCAircraft.json`` into the folder, paths
relative to ``images/``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

IMAGE_SUFFIXES = {'.jpeg', '.jpg', '.png'}


def imagenet_split(root: Path) -> dict:
    names_file = root / 'classnames.txt'
    if not names_file.is_file():
        raise SystemExit(f'{names_file} is missing: CoOp\'s ImageNet layout has classnames.txt '
                         '("<wnid> <class name>" per line) beside images/')
    wnids, names = [], []
    for line in names_file.read_text().splitlines():
        if line.strip():
            wnid, name = line.strip().split(' ', 1)
            wnids.append(wnid)
            names.append(name)
    split = dict(train=[], val=[], test=[])
    for part, folder in (('train', 'train'), ('test', 'val')):
        for label, (wnid, name) in enumerate(zip(wnids, names)):
            directory = root / 'images' / folder / wnid
            if not directory.is_dir():
                raise SystemExit(f'{directory} is missing (class {name!r} of classnames.txt)')
            for path in sorted(directory.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    split[part].append([f'{folder}/{wnid}/{path.name}', label, name])
    return split


def aircraft_split(root: Path) -> dict:
    variants_file = root / 'variants.txt'
    if not variants_file.is_file():
        raise SystemExit(f'{variants_file} is missing: FGVC-Aircraft\'s data folder has '
                         'variants.txt and images_variant_{train,val,test}.txt')
    names = [v.strip() for v in variants_file.read_text().splitlines() if v.strip()]
    label_of = {name: i for i, name in enumerate(names)}
    split = {}
    for part in ('train', 'val', 'test'):
        rows = []
        for line in (root / f'images_variant_{part}.txt').read_text().splitlines():
            if line.strip():
                image, variant = line.strip().split(' ', 1)
                if variant not in label_of:
                    raise SystemExit(f'images_variant_{part}.txt names variant {variant!r}, '
                                     'which variants.txt does not list')
                rows.append([f'{image}.jpg', label_of[variant], variant])
        split[part] = rows
    return split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dataset', choices=['imagenet', 'fgvc-aircraft'])
    parser.add_argument('root', type=Path)
    args = parser.parse_args(argv)
    if args.dataset == 'imagenet':
        split, name = imagenet_split(args.root), 'split_zhou_ImageNet.json'
    else:
        split, name = aircraft_split(args.root), 'split_zhou_FGVCAircraft.json'
    out = args.root / name
    out.write_text(json.dumps(split))
    print(f'{out}: ' + ', '.join(f'{k} {len(v)}' for k, v in split.items()))


if __name__ == '__main__':
    main()
