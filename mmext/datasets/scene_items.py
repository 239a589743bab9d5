"""Fashion Scenes canvases with one item each, as an mmpretrain classification dataset.

Every canvas of a set generated with ``--min-items 1 --max-items 1`` holds one tinted
Fashion-MNIST item at a random place and scale on a textured background; its class is the
canvas's label and its exact mask (and box) is known. That is what a saliency evaluation needs:
a classifier trained on the canvases, and where the evidence lies.

    python tools/data/make_fashion_scenes.py --out data/fashion_scene_items \
        --min-items 1 --max-items 1 --num-train 3000 --num-val 500      # or: make data
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mmpretrain.datasets import BaseDataset
from pycocotools import mask as mask_utils

from mmext.registry import DATASETS

from .fashion_mnist import FASHION_MNIST_CLASSES, CorruptDataError, DataNotFoundError

HOW_TO_MAKE_ITEMS = ('Generate it with `python tools/data/make_fashion_scenes.py --out '
                     'data/fashion_scene_items --min-items 1 --max-items 1 --num-train 3000 '
                     '--num-val 500` (or `make data`).')


@DATASETS.register_module()
class FashionSceneItems(BaseDataset):
    """One sample per single-item Fashion Scenes canvas.

    A sample's data info holds ``img_path``, ``gt_label`` (the item's class), ``gt_bbox``
    (x, y, w, h in pixels) and ``gt_mask`` ((H, W) bool, decoded from the COCO RLE when the
    sample is read). ``PackInputs(algorithm_keys=('gt_mask', 'gt_bbox'))`` hands them to the
    model.

    Args:
        data_root: the set's folder (``meta.json``, ``annotations/``, ``train/``, ``val/``).
        split: 'train' or 'val'.
        **kwargs: passed to ``mmpretrain.datasets.BaseDataset`` (pipeline, indices, ...).
    """

    METAINFO = {'classes': FASHION_MNIST_CLASSES}

    def __init__(self, data_root: str = 'data/fashion_scene_items', split: str = 'val',
                 **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split = split
        super().__init__(ann_file=f'annotations/instances_{split}.json', data_root=data_root,
                         data_prefix=f'{split}/images', **kwargs)

    def load_data_list(self) -> list[dict]:
        path = Path(self.ann_file)
        if not path.is_file():
            raise DataNotFoundError(f'the single-item Fashion Scenes annotation file {path} is '
                                    f'missing. {HOW_TO_MAKE_ITEMS}')
        try:
            coco = json.loads(path.read_text())
            images, annotations = coco['images'], coco['annotations']
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise CorruptDataError(f'{path} is not a COCO annotation file ({e!r}). Regenerate '
                                   'the set with --force. ' + HOW_TO_MAKE_ITEMS) from e
        by_image: dict[int, list] = {}
        for ann in annotations:
            by_image.setdefault(ann['image_id'], []).append(ann)
        folder = Path(self.data_prefix['img_path'])
        if not folder.is_dir():
            raise DataNotFoundError(f'image folder {folder} is missing. {HOW_TO_MAKE_ITEMS}')
        items = []
        for image in images:
            anns = by_image.get(image['id'], [])
            if len(anns) != 1:
                raise ValueError(
                    f'{path}: canvas {image["file_name"]} has {len(anns)} items; '
                    'FashionSceneItems needs exactly one per canvas (a set generated with '
                    '--min-items 1 --max-items 1). ' + HOW_TO_MAKE_ITEMS)
            ann = anns[0]
            items.append(dict(img_path=str(folder / image['file_name']),
                              gt_label=int(ann['category_id']) - 1,
                              gt_bbox=np.array(ann['bbox'], dtype=np.float32),
                              gt_rle=ann['segmentation']))
        return items

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rle = info.pop('gt_rle')
        rle = dict(rle, counts=rle['counts'].encode() if isinstance(rle['counts'], str)
                   else rle['counts'])
        info['gt_mask'] = mask_utils.decode(rle).astype(bool)
        return info
