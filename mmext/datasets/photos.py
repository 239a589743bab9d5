"""Real photos that ship inside installed packages, for saliency maps and visual checks.

Sources: scikit-image's data (astronaut, chelsea, coffee, rocket, motorcycle), scikit-learn's
sample images (china, flower), matplotlib's ``grace_hopper.jpg`` and Debian's ``darknet`` package
(dog, eagle, giraffe, horses, kite, person, scream under ``/usr/share/darknet/data``). None of
them is downloaded here; a missing source is reported with the command that installs it.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .fashion_mnist import DataNotFoundError

DARKNET_PHOTOS = ('dog', 'eagle', 'giraffe', 'horses', 'kite', 'person', 'scream')
DARKNET_HINT = ('Debian\'s darknet package carries them: `sudo apt-get install darknet`, or '
                'without root `apt-get download darknet && dpkg-deb -x darknet_*.deb DIR` and '
                '`export MMEXT_DARKNET_DATA=DIR/usr/share/darknet/data`')


def _read(path: str | Path) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(path).convert('RGB'))


def darknet_data_dir() -> Path | None:
    """``$MMEXT_DARKNET_DATA``, Debian's path, or the copy ``make install`` unpacks into the
    mmext cache."""
    from mmext.utils.cache import cache_root
    cached = cache_root() / 'darknet' / 'deb' / 'usr' / 'share' / 'darknet' / 'data'
    for folder in (os.environ.get('MMEXT_DARKNET_DATA'), '/usr/share/darknet/data', cached):
        if folder and (Path(folder) / 'dog.jpg').is_file():
            return Path(folder)
    return None


def _package_photos() -> dict[str, Callable[[], np.ndarray]]:
    loaders: dict[str, Callable[[], np.ndarray]] = {}
    try:
        import skimage.data as sk
    except ImportError:
        sk = None
    if sk is not None:
        loaders.update(astronaut=sk.astronaut, chelsea=sk.chelsea, coffee=sk.coffee,
                       rocket=sk.rocket, motorcycle=lambda: sk.stereo_motorcycle()[0])
    try:
        from sklearn.datasets import load_sample_image
        loaders.update(china=lambda: load_sample_image('china.jpg'),
                       flower=lambda: load_sample_image('flower.jpg'))
    except ImportError:
        pass
    try:
        from matplotlib import cbook
        loaders['grace_hopper'] = lambda: _read(cbook.get_sample_data('grace_hopper.jpg'))
    except ImportError:
        pass
    return loaders


def real_photos(names: list[str] | None = None) -> dict[str, np.ndarray]:
    """``{name: (H, W, 3) uint8 RGB}`` of the named photos (default: every one available).

    A named photo whose source is missing raises ``DataNotFoundError`` with the install command;
    the default set leaves out the darknet photos only when the package is absent (the caller
    can say so with ``missing_photo_sources()``)."""
    loaders = _package_photos()
    darknet = darknet_data_dir()
    for name in DARKNET_PHOTOS:
        if darknet is not None:
            loaders[name] = lambda n=name: _read(darknet / f'{n}.jpg')
    if names is None:
        names = list(loaders)
    photos = {}
    for name in names:
        if name not in loaders:
            if name in DARKNET_PHOTOS:
                raise DataNotFoundError(f'photo {name!r} is missing. {DARKNET_HINT}')
            known = sorted(set(loaders) | set(DARKNET_PHOTOS))
            raise DataNotFoundError(f'unknown photo {name!r}; known: {known} (scikit-image, '
                                    'scikit-learn and matplotlib carry the others: make install)')
        photos[name] = np.ascontiguousarray(loaders[name]()[..., :3])
    return photos


def missing_photo_sources() -> list[str]:
    """Sentences naming each photo source that is not installed, with its fix."""
    missing = []
    if darknet_data_dir() is None:
        missing.append(f'darknet photos {list(DARKNET_PHOTOS)}: {DARKNET_HINT}')
    loaders = _package_photos()
    if 'chelsea' not in loaders:
        missing.append('scikit-image photos: pip install scikit-image (make install)')
    return missing
