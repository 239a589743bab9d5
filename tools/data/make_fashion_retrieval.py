"""Write the Fashion Scenes text-to-image retrieval set (A3R's demo) on the challenge's layout.

    python tools/data/make_fashion_retrieval.py      # data/fashion_scene_items -> data/fashion_retrieval

Reads the single-item Fashion Scenes set (``make data``) and writes
``OUT/{train,val}_label.txt`` with lines ``<image>$<colour> <class>$<caption>``: one caption per
canvas from its exact metadata (class or a synonym, colour word of its tint, size, position;
``mmext/datasets/fashion_vocabulary.json``). A share of the training captions leaves the colour
out (``--missing-colour``), as real captions miss attributes; validation captions always name it.
Image paths are relative to the items set (``data_prefix`` of the configs).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmext.datasets import DataNotFoundError  # noqa: E402
from mmext.datasets.fashion_captions import FashionVocabulary, objects_of_annotations  # noqa: E402
from projects.a3r.dataset import AnnotationLine, write_annotations  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--items', type=Path, default=Path('data/fashion_scene_items'))
    parser.add_argument('--out', type=Path, default=Path('data/fashion_retrieval'))
    parser.add_argument('--missing-colour', type=float, default=0.4,
                        help='share of training captions without their colour word')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.missing_colour <= 1:
        parser.error(f'--missing-colour must be in [0, 1], got {args.missing_colour}')
    return args


def lines_of_split(items: Path, split: str, vocabulary: FashionVocabulary,
                   rng: np.random.Generator, missing_colour: float) -> list[AnnotationLine]:
    path = items / 'annotations' / f'instances_{split}.json'
    if not path.is_file():
        raise DataNotFoundError(
            f'{path} is missing: make the single-item Fashion Scenes set first (`make data`, or '
            'python tools/data/make_fashion_scenes.py --out data/fashion_scene_items '
            '--min-items 1 --max-items 1 --num-train 3000 --num-val 500)')
    coco = json.loads(path.read_text())
    by_image: dict[int, list] = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    lines = []
    for image in coco['images']:
        objects = objects_of_annotations(by_image[image['id']])
        with_colour = split == 'val' or rng.random() >= missing_colour
        caption = vocabulary.describe(objects, image['width'], rng, colour=with_colour)
        words = vocabulary.attributes(objects[0], image['width'])
        lines.append(AnnotationLine(f'{split}/images/{image["file_name"]}',
                                    f'{words["colour"]} {words["class"]}', caption))
    return lines


def main(argv=None):
    args = parse_args(argv)
    vocabulary = FashionVocabulary()
    rng = np.random.default_rng(args.seed)
    for split in ('train', 'val'):
        lines = lines_of_split(args.items, split, vocabulary, rng, args.missing_colour)
        write_annotations(args.out / f'{split}_label.txt', lines)
        print(f'{split}: {len(lines)} captions -> {args.out / f"{split}_label.txt"}')


if __name__ == '__main__':
    main()
