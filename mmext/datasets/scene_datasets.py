"""The Fashion Scenes sets as mmdet / mmseg datasets, with clear errors for missing or damaged files.

They are mmdet's ``CocoDataset`` and mmseg's ``BaseSegDataset``: stock metrics (CocoMetric,
IoUMetric) and tools (browse_dataset, analyze_results) treat them as such.
"""
import json
from pathlib import Path

from mmdet.datasets import CocoDataset
from mmseg.datasets import BaseSegDataset

from mmext.registry import DATASETS

from .fashion_mnist import FASHION_MNIST_CLASSES, CorruptDataError, DataNotFoundError
from .fashion_scenes import SEG_CLASSES, SEG_PALETTE

HOW_TO_MAKE = ('Generate the set with `python tools/data/make_fashion_scenes.py --out DIR` '
               '(or `make data` for data/fashion_scenes).')


def _check_folder(path: str, what: str) -> None:
    if not Path(path).is_dir():
        raise DataNotFoundError(f'Fashion Scenes {what} folder {path} does not exist. '
                                f'{HOW_TO_MAKE}')


@DATASETS.register_module()
class FashionScenesDataset(CocoDataset):
    """mmdet's ``CocoDataset`` over a Fashion Scenes detection set (10 Fashion-MNIST classes)."""

    METAINFO = dict(classes=FASHION_MNIST_CLASSES,
                    palette=[tuple(c) for c in SEG_PALETTE[1:]])

    def load_data_list(self) -> list[dict]:
        path = Path(self.ann_file)
        if not path.is_file():
            raise DataNotFoundError(f'Fashion Scenes annotation file {path} is missing. '
                                    f'{HOW_TO_MAKE}')
        try:
            coco = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CorruptDataError(f'{path} is not valid JSON ({e}). Regenerate the set with '
                                   '`python tools/data/make_fashion_scenes.py --force`.') from e
        missing = {'images', 'annotations', 'categories'} - set(coco)
        if missing:
            raise CorruptDataError(f'{path} is not a COCO annotation file: it has no '
                                   f'{sorted(missing)}. Regenerate the set with '
                                   '`python tools/data/make_fashion_scenes.py --force`.')
        _check_folder(self.data_prefix['img'], 'image')
        return super().load_data_list()


@DATASETS.register_module()
class FashionScenesSegDataset(BaseSegDataset):
    """mmseg's ``BaseSegDataset`` over a Fashion Scenes set: PNG canvases and label maps
    (0 background, 1..10 the Fashion-MNIST classes)."""

    METAINFO = dict(classes=SEG_CLASSES, palette=[list(c) for c in SEG_PALETTE])

    def __init__(self, img_suffix='.png', seg_map_suffix='.png', **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self) -> list[dict]:
        _check_folder(self.data_prefix['img_path'], 'image')
        _check_folder(self.data_prefix['seg_map_path'], 'label')
        return super().load_data_list()
