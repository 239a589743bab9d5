"""VoxCeleb source / driving pairs on FOMM's ``vox-png`` layout, with face attributes cached
per frame (``tools/data/cache_face_attributes.py``).

Layout: ``<data_root>/<split>/<video>/<frame>.png`` (one folder of frames per video, sorted by
name; FOMM's preprocessing writes them, e.g. ``id10001#7w0IBEWc9Qw#000993#001143.mp4/
0000000.png``; the identity is the name's part before the first ``#``). Attributes: an ``.npz``
whose key ``<split>/<video>`` holds a (frames, A) array (NaN rows: frames without a face).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.logging import MMLogger

from mmext.registry import DATASETS

VOX_LAYOUT = ('<data_root>/<split>/<video>/<frame>.png, one folder of frames per video '
              "(FOMM's vox-png); see projects/fadm/README.md#voxceleb")
FRAME_SUFFIXES = ('.png', '.jpg', '.jpeg')


def video_frames(video: Path) -> list[Path]:
    """The frames of one video folder, sorted; a folder without any is named in the error."""
    frames = sorted(p for p in video.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not frames:
        raise ValueError(f'{video} holds no frames ({", ".join(FRAME_SUFFIXES)}): every video '
                         f'folder needs its frames; expected {VOX_LAYOUT}')
    return frames


def list_videos(root: Path, split: str) -> list[Path]:
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f'VoxCeleb split folder {folder} not found; expected '
                                f'{VOX_LAYOUT}')
    videos = sorted(p for p in folder.iterdir() if p.is_dir())
    if not videos:
        raise ValueError(f'{folder} holds no video folders; expected {VOX_LAYOUT}')
    return videos


@DATASETS.register_module()
class VoxCelebPairDataset(BaseDataset):
    """Source / driving frames of one video with their attributes.

    Args:
        data_root: the ``vox-png`` folder.
        split: 'train' or 'test'.
        attributes_file: the cache of per-frame attributes (required: FADM conditions on them).
        num_attributes: their expected length (a cache of another length is refused).
        pairs_per_video: train: random frame pairs drawn per video (FOMM repeats its dataset
            x75 with one pair per visit).
        frames_per_video: test: the reconstruction protocol drives the first frame with the
            first ``frames_per_video`` frames (all when None); one sequence per video.
        image_size: frames are resized to it when they differ.
        seed: the draw of train pairs.

    Items: ``source``, ``driving`` (3, S, S) in [-1, 1], ``source_attributes``,
    ``driving_attributes`` (A,), ``sequence_id`` (the video's index), ``frame``, ``label`` -1.
    Frames without a face (NaN attributes) are left out, and their count is logged.
    """

    def __init__(self, data_root: str, split: str = 'train', attributes_file: str | None = None,
                 num_attributes: int = 9, pairs_per_video: int = 1,
                 frames_per_video: int | None = None, image_size: int = 256, seed: int = 0,
                 **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if attributes_file is None:
            raise ValueError('VoxCeleb pairs need per-frame attributes: write them with '
                             '`python tools/data/cache_face_attributes.py DATA_ROOT OUT.npz` and '
                             'set attributes_file')
        self.split, self.attributes_file = split, attributes_file
        self.num_attributes, self.pairs_per_video = num_attributes, pairs_per_video
        self.frames_per_video, self.image_size, self.seed = frames_per_video, image_size, seed
        kwargs.setdefault('serialize_data', False)
        super().__init__(data_root=data_root, **kwargs)

    def _attributes(self, cache, video: Path, n: int) -> np.ndarray:
        key = f'{self.split}/{video.name}'
        if key not in cache:
            raise KeyError(f'{self.attributes_file} has no attributes for {key}: rerun '
                           'tools/data/cache_face_attributes.py on this data root')
        attrs = cache[key]
        if attrs.shape != (n, self.num_attributes):
            raise ValueError(f'{self.attributes_file}[{key}] is {attrs.shape}, expected ({n}, '
                             f'{self.num_attributes}) (frames, num_attributes): the cache '
                             'belongs to other frames or another extractor')
        return attrs.astype(np.float32)

    def load_data_list(self) -> list[dict]:
        path = Path(self.attributes_file)
        if not path.is_file():
            raise FileNotFoundError(f'attribute cache {path} not found: write it with '
                                    '`python tools/data/cache_face_attributes.py`')
        cache = np.load(path)
        rng = np.random.default_rng(self.seed)
        out, faceless = [], 0
        for vid, video in enumerate(list_videos(Path(self.data_root), self.split)):
            frames = video_frames(video)
            attrs = self._attributes(cache, video, len(frames))
            usable = [i for i in range(len(frames)) if np.isfinite(attrs[i]).all()]
            faceless += len(frames) - len(usable)
            if self.split == 'train':
                if len(usable) < 2:
                    continue
                for _ in range(self.pairs_per_video):
                    s, d = rng.choice(usable, 2, replace=False)
                    out.append(self._item(frames, attrs, s, d, vid, 0))
            else:
                if not usable:
                    continue
                driving = usable[:self.frames_per_video] if self.frames_per_video else usable
                out += [self._item(frames, attrs, usable[0], d, vid, f)
                        for f, d in enumerate(driving)]
        if faceless:
            MMLogger.get_current_instance().warning(
                f'{faceless} frames of {self.data_root}/{self.split} have no face (NaN '
                'attributes) and are left out')
        if not out:
            raise ValueError(f'no usable pair in {self.data_root}/{self.split}')
        return out

    @staticmethod
    def _item(frames, attrs, s, d, vid, frame) -> dict:
        return dict(source_path=str(frames[s]), driving_path=str(frames[d]),
                    source_attributes=attrs[s], driving_attributes=attrs[d], sequence_id=vid,
                    frame=frame)

    def _read(self, path: str) -> torch.Tensor:
        from PIL import Image
        try:
            image = Image.open(path).convert('RGB')
        except OSError as err:
            raise ValueError(f'cannot read the frame {path}: {err}') from err
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.BICUBIC)
        array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
        return torch.from_numpy(array.copy()) / 127.5 - 1

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        return dict(source=self._read(info['source_path']),
                    driving=self._read(info['driving_path']),
                    source_attributes=torch.from_numpy(info['source_attributes']),
                    driving_attributes=torch.from_numpy(info['driving_attributes']),
                    sequence_id=info['sequence_id'], frame=info['frame'], label=-1)
