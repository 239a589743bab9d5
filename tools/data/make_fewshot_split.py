"""Write a CoOp split file (``split_zhou_<Name>.json``) for the single-item Fashion Scenes set,
so that SADA's demo reads it through the same ``FewShotDataset`` as the 11 real datasets.

    python tools/data/make_fewshot_split.py      # data/fashion_scene_items/split_zhou_FashionSceneItems.json

Train and val are carved from the 3,000 training canvases (``--val-fraction`` of each class to
val, seeded), test is the 500 validation canvases (Fashion-MNIST test items). Paths are
relative to the items set's folder (``image_dir=''``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmext.datasets import FASHION_MNIST_CLASSES, FashionSceneItems  # noqa: E402

SPLIT_NAME = 'split_zhou_FashionSceneItems.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--items', type=Path, default=Path('data/fashion_scene_items'))
    parser.add_argument('--val-fraction', type=float, default=0.2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        parser.error(f'--val-fraction must be in (0, 1), got {args.val_fraction}')
    return args


def rows_of(items: Path, split: str) -> list[list]:
    dataset = FashionSceneItems(data_root=str(items), split=split, lazy_init=True)
    dataset.full_init()
    labels = dataset.get_gt_labels()
    paths = [os.path.relpath(dataset.get_data_info(i)['img_path'], items)
             for i in range(len(dataset))]
    return [[p, int(label), FASHION_MNIST_CLASSES[int(label)]]
            for p, label in zip(paths, labels)]


def main(argv=None):
    args = parse_args(argv)
    train = rows_of(args.items, 'train')
    rng = np.random.RandomState(args.seed)
    to_val = set()
    for label in range(len(FASHION_MNIST_CLASSES)):
        members = [i for i, row in enumerate(train) if row[1] == label]
        count = int(round(args.val_fraction * len(members)))
        to_val.update(rng.choice(members, count, replace=False).tolist())
    split = dict(train=[r for i, r in enumerate(train) if i not in to_val],
                 val=[r for i, r in enumerate(train) if i in to_val],
                 test=rows_of(args.items, 'val'))
    out = args.items / SPLIT_NAME
    out.write_text(json.dumps(split))
    print(f'{out}: ' + ', '.join(f'{k} {len(v)}' for k, v in split.items()))


if __name__ == '__main__':
    main()
