"""Fashion-MNIST from its original IDX files, as Debian's ``dataset-fashion-mnist`` installs them.

The folder is, in order: the ``root`` argument (a config's ``data_root``), the environment
variable ``MMEXT_FASHION_MNIST``, then ``/usr/share/datasets/fashion-mnist``. Files may be gzipped
(``*-ubyte.gz``, as shipped) or not.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmext.registry import DATASETS

FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
ENV_VAR = 'MMEXT_FASHION_MNIST'
_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 60000),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 10000),
}
_IDX_MAGIC = {'images': 2051, 'labels': 2049}
HOW_TO_GET = (
    'Get Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist` (files go to '
    f'{DEBIAN_DIR}), or without root: `apt-get download dataset-fashion-mnist && dpkg-deb -x '
    'dataset-fashion-mnist_*.deb DIR`, then set {env}=DIR/usr/share/datasets/fashion-mnist or '
    'pass data_root=... in the config. `make install` does the first for root.'
).replace('{env}', ENV_VAR)


class DataNotFoundError(FileNotFoundError):
    """A data file is missing; the message says how to get it."""


class CorruptDataError(ValueError):
    """A data file exists but cannot be read as what it should be."""


def fashion_mnist_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the IDX files: ``root``, else ``$MMEXT_FASHION_MNIST``, else Debian's."""
    return Path(root or os.environ.get(ENV_VAR) or DEBIAN_DIR)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + '.gz', stem):
        if (folder / name).is_file():
            return folder / name
    raise DataNotFoundError(f'Fashion-MNIST file {stem}.gz is missing in {folder}. {HOW_TO_GET}')


def read_idx(path: str | os.PathLike, kind: str) -> np.ndarray:
    """Read one IDX file (``kind`` is 'images' or 'labels') into a uint8 array.

    Returns: (N, rows, cols) for images, (N,) for labels.
    Raises CorruptDataError naming the file when the header, the size or the gzip stream is wrong.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == '.gz' else open
    try:
        with opener(path, 'rb') as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptDataError(f'{path} cannot be read ({e}); the file is damaged. '
                               f'Reinstall it. {HOW_TO_GET}') from e
    ndim = 3 if kind == 'images' else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDataError(f'{path} is truncated ({len(raw)} bytes). {HOW_TO_GET}')
    magic = int.from_bytes(raw[:4], 'big')
    if magic != _IDX_MAGIC[kind]:
        raise CorruptDataError(f'{path} is not an IDX {kind} file (magic {magic}, expected '
                               f'{_IDX_MAGIC[kind]}). {HOW_TO_GET}')
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise CorruptDataError(f'{path} has {len(raw)} bytes, its header promises {expected}; '
                               f'the file is truncated or damaged. {HOW_TO_GET}')
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(split: str = 'train',
                       root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a split of Fashion-MNIST.

    Args:
        split: 'train' (60,000 items) or 'test' (10,000 items).
        root: folder of the IDX files; see :func:`fashion_mnist_root`.

    Returns:
        images (N, 28, 28) uint8 and labels (N,) int64 in [0, 10).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = fashion_mnist_root(root)
    if not folder.is_dir():
        raise DataNotFoundError(f'Fashion-MNIST folder {folder} does not exist. {HOW_TO_GET}')
    img_stem, label_stem, count = _FILES[split]
    images = read_idx(_find(folder, img_stem), 'images')
    labels = read_idx(_find(folder, label_stem), 'labels').astype(np.int64)
    if len(images) != count or len(labels) != count or images.shape[1:] != (28, 28):
        raise CorruptDataError(
            f'Fashion-MNIST {split} in {folder} has {len(images)} images of {images.shape[1:]} and '
            f'{len(labels)} labels; expected {count} of (28, 28). {HOW_TO_GET}')
    if labels.max() >= len(FASHION_MNIST_CLASSES):
        raise CorruptDataError(f'Fashion-MNIST {split} labels in {folder} exceed 9. {HOW_TO_GET}')
    return images, labels


@DATASETS.register_module()
class FashionMNIST(BaseDataset):
    """Fashion-MNIST as an mmpretrain classification dataset read from the local IDX files.

    Unlike ``mmpretrain.FashionMNIST`` it never downloads: a missing or damaged file raises an
    error that says how to get the data.

    Args:
        data_root: folder of the IDX files (default: ``$MMEXT_FASHION_MNIST`` or Debian's path).
        split: 'train' or 'test'.
        index_range: keep items ``start <= i < stop`` of the split only, e.g. (0, 30000) and
            (30000, 60000) for the two halves of the training set a NAS search trains weights
            and architecture on. ``indices`` (of BaseDataset) then applies within the range.
        **kwargs: passed to ``mmpretrain.datasets.BaseDataset`` (pipeline, indices, ...).
    """

    METAINFO = {'classes': FASHION_MNIST_CLASSES}

    def __init__(self, data_root: str = '', split: str = 'train',
                 index_range: tuple[int, int] | None = None, **kwargs):
        self.split = split
        if index_range is not None and split in _FILES:
            count = _FILES[split][2]
            start, stop = index_range
            if not 0 <= start < stop <= count:
                raise ValueError(f'index_range {tuple(index_range)} must satisfy 0 <= start < '
                                 f'stop <= {count} (the size of the {split!r} split)')
        self.index_range = index_range
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        images, labels = load_fashion_mnist(self.split, self.data_root or None)
        items = [{'img': img, 'gt_label': int(label)} for img, label in zip(images, labels)]
        if self.index_range is not None:
            items = items[self.index_range[0]:self.index_range[1]]
        return items
