"""Few-shot classification on CoOp's split files (the protocol of CoOp, ProDA, Tip-Adapter, SADA).

CoOp (Zhou et al., 2022) fixed the train / val / test images of 11 datasets in one JSON file per
dataset, ``split_zhou_<Name>.json``:

    {"train": [["<image path>", <label>, "<class name>"], ...], "val": [...], "test": [...]}

with image paths relative to the dataset's image folder. A k-shot run draws k training images per
class (and min(k, 4) validation images) with a seed; 3 seeds per shot count.
"""
from __future__ import annotations

import json
import random
from collections import OrderedDict
from pathlib import Path

from mmpretrain.datasets import BaseDataset

from mmext.registry import DATASETS

from .fashion_mnist import CorruptDataError, DataNotFoundError


def read_split_file(path: str | Path) -> dict[str, list[tuple[str, int, str]]]:
    """The splits of a ``split_zhou_*.json`` file as ``{split: [(path, label, name), ...]}``."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f'split file {path} does not exist; CoOp\'s split files '
                                '(split_zhou_<Name>.json) come with its DATASETS.md, one per '
                                'dataset, beside the dataset\'s image folder')
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorruptDataError(f'split file {path} is not valid JSON ({err})') from err
    splits = {}
    for split, items in raw.items():
        rows = []
        for i, item in enumerate(items):
            if not (isinstance(item, (list, tuple)) and len(item) == 3):
                raise CorruptDataError(f'{path}: {split}[{i}] should be [image path, label, '
                                       f'class name], got {item!r}')
            rows.append((str(item[0]), int(item[1]), str(item[2])))
        splits[split] = rows
    return splits


def split_class_names(path: str | Path) -> list[str]:
    """The class names of a split file, in label order."""
    names: dict[int, str] = {}
    for rows in read_split_file(path).values():
        for _, label, name in rows:
            names.setdefault(label, name)
    if sorted(names) != list(range(len(names))):
        raise CorruptDataError(f'{path}: labels should be 0..C-1, got {sorted(names)[:10]}')
    return [names[i] for i in range(len(names))]


def sample_few_shot(items: list[tuple[str, int, str]], num_shots: int, seed: int,
                    what: str = 'train', strict: bool = True) -> list[tuple[str, int, str]]:
    """k items per class, drawn as CoOp's Dassl does: classes in order of first appearance,
    ``random.sample`` from a generator seeded with ``seed``. A class with fewer than k items
    is an error when ``strict`` (training shots), else gives all it has (Dassl's validation)."""
    by_label: OrderedDict[int, list] = OrderedDict()
    for item in items:
        by_label.setdefault(item[1], []).append(item)
    rng = random.Random(seed)
    out = []
    for label, group in by_label.items():
        if len(group) < num_shots and not strict:
            out += group
            continue
        if len(group) < num_shots:
            raise ValueError(f'{num_shots} shots asked, but class {label} ({group[0][2]!r}) has '
                             f'only {len(group)} {what} images; use at most {len(group)} shots')
        out += rng.sample(group, num_shots)
    return out


@DATASETS.register_module()
class FewShotDataset(BaseDataset):
    """A dataset of a CoOp split file, k shots per class in training.

    Args:
        data_root: the dataset's folder.
        split_file: the split JSON, relative to ``data_root`` (``split_zhou_OxfordPets.json``).
        image_dir: the folder the split's image paths are relative to (``images``).
        split: 'train', 'val' or 'test'.
        num_shots: k for 'train' (and min(k, 4) for 'val'); ``None`` or -1: every image.
        seed: the few-shot draw's seed.
        check_files: verify that every listed image exists (one ``stat`` per image).

    Class names (metainfo ``classes``) come from the file, in label order.
    """

    def __init__(self, data_root: str, split_file: str, image_dir: str = 'images',
                 split: str = 'train', num_shots: int | None = None, seed: int = 1,
                 check_files: bool = True, **kwargs):
        if split not in ('train', 'val', 'test'):
            raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
        self.split_file, self.image_dir, self.split = split_file, image_dir, split
        self.num_shots, self.seed, self.check_files = num_shots, seed, check_files
        self._splits = read_split_file(Path(data_root) / split_file)
        classes = tuple(split_class_names(Path(data_root) / split_file))
        super().__init__(ann_file='', data_root=data_root,
                         metainfo=dict(classes=classes), **kwargs)

    def load_data_list(self) -> list[dict]:
        if self.split not in self._splits:
            raise CorruptDataError(f'{self.split_file} has no {self.split!r} split (it has '
                                   f'{sorted(self._splits)})')
        items = self._splits[self.split]
        shots = self.num_shots if self.num_shots not in (None, -1) else None
        if shots is not None and self.split != 'test':
            shots = shots if self.split == 'train' else min(shots, 4)
            items = sample_few_shot(items, shots, self.seed, self.split,
                                    strict=self.split == 'train')
        root = Path(self.data_root) / self.image_dir
        data_list = [dict(img_path=str(root / path), gt_label=label) for path, label, _ in items]
        if self.check_files:
            missing = [d['img_path'] for d in data_list if not Path(d['img_path']).is_file()]
            if missing:
                raise DataNotFoundError(
                    f'{len(missing)} images that {self.split_file} lists are missing under '
                    f'{root}, e.g. {missing[0]}; check data_root and image_dir (the folder the '
                    'split\'s paths are relative to)')
        return data_list
