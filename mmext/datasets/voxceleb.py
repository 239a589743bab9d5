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
JITTER = ('brightness', 'contrast', 'saturation', 'hue')


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
        pairs_per_video: train: visits per video and epoch, each drawing a fresh random frame
            pair (numpy's RNG, which the runner seeds per worker: FOMM's x75 repeat).
        frames_per_video: test: the reconstruction protocol drives the first frame with the
            first ``frames_per_video`` frames (all when None); one sequence per video.
        image_size: frames are resized to it when they differ.
        horizontal_flip: train: flip both frames left-right with probability 0.5 (FOMM's
            augmentation), with the attributes measured on the flipped frames (the cache's
            ``<split>/<video>/mirrored`` entries, ``cache_face_attributes.py --mirrored``); a
            pair whose flipped face was not found stays unflipped.
        colour_jitter: train: FOMM's jitter, e.g. ``dict(brightness=0.1, contrast=0.1,
            saturation=0.1, hue=0.1)`` (torchvision's ColorJitter): one draw of factors and
            order per pair, applied to both frames (attributes unchanged).
        FOMM's time flip (swapping source and driving) adds nothing here: the pair's order is
        drawn at random already.

    Items: ``source``, ``driving`` (3, S, S) in [-1, 1], ``source_attributes``,
    ``driving_attributes`` (A,), ``sequence_id`` (the video's index), ``frame`` (the driving
    frame's index in its video), ``label`` -1. Test: the first frame with a face drives.
    Frames without a face (NaN attributes) are left out, and their count is logged.
    """

    def __init__(self, data_root: str, split: str = 'train', attributes_file: str | None = None,
                 num_attributes: int = 9, pairs_per_video: int = 1,
                 frames_per_video: int | None = None, image_size: int = 256,
                 horizontal_flip: bool = False, colour_jitter: dict | None = None, **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if split == 'test' and (horizontal_flip or colour_jitter):
            raise ValueError('horizontal_flip and colour_jitter augment training pairs; the '
                             'test split takes neither')
        unknown = set(colour_jitter or {}) - set(JITTER)
        if unknown:
            raise ValueError(f'colour_jitter keys {sorted(unknown)} are unknown; use '
                             f'{list(JITTER)}')
        self.horizontal_flip, self.colour_jitter = horizontal_flip, dict(colour_jitter or {})
        if self.colour_jitter:          # torchvision checks the strengths when it is built
            from torchvision.transforms.v2 import ColorJitter
            ColorJitter(**self.colour_jitter)
        if attributes_file is None:
            raise ValueError('VoxCeleb pairs need per-frame attributes: write them with '
                             '`python tools/data/cache_face_attributes.py DATA_ROOT OUT.npz` and '
                             'set attributes_file')
        self.split, self.attributes_file = split, attributes_file
        self.num_attributes, self.pairs_per_video = num_attributes, pairs_per_video
        self.frames_per_video, self.image_size = frames_per_video, image_size
        kwargs.setdefault('serialize_data', False)
        super().__init__(data_root=data_root, **kwargs)

    def _attributes(self, cache, video: Path, n: int, suffix: str = '') -> np.ndarray:
        key = f'{self.split}/{video.name}{suffix}'
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
            options = (' --extractor deca --deca-checkpoint DECA_MODEL_TAR'
                       if self.num_attributes == 56 else '')
            options += ' --mirrored' if self.horizontal_flip else ''
            raise FileNotFoundError(f'attribute cache {path} not found: write it with '
                                    f'`python tools/data/cache_face_attributes.py '
                                    f'{self.data_root} {path}{options}`')
        with np.load(path) as cache:
            out, faceless = self._entries(cache)
        if faceless:
            MMLogger.get_current_instance().warning(
                f'{faceless} frames of {self.data_root}/{self.split} have no face (NaN '
                'attributes) and are left out')
        if not out:
            raise ValueError(f'no usable pair in {self.data_root}/{self.split}')
        return out

    def _entries(self, cache) -> tuple[list[dict], int]:
        """Entries index ``self.videos`` (frame paths and attributes per video)."""
        out, faceless, self.videos = [], 0, []
        for vid, video in enumerate(list_videos(Path(self.data_root), self.split)):
            frames = video_frames(video)
            attrs = self._attributes(cache, video, len(frames))
            mirrored = None
            if self.horizontal_flip:
                if f'{self.split}/{video.name}/mirrored' not in cache:
                    raise KeyError(f'{self.attributes_file} has no attributes of mirrored '
                                   f'frames for {self.split}/{video.name}, which '
                                   'horizontal_flip needs: rerun tools/data/'
                                   'cache_face_attributes.py with --mirrored')
                mirrored = self._attributes(cache, video, len(frames), '/mirrored')
            self.videos.append(([str(f) for f in frames], attrs, mirrored))
            usable = [i for i in range(len(frames)) if np.isfinite(attrs[i]).all()]
            faceless += len(frames) - len(usable)
            if self.split == 'train':
                if len(usable) >= 2:
                    out += [dict(usable=usable, sequence_id=vid)] * self.pairs_per_video
            elif usable:
                driving = usable[:self.frames_per_video] if self.frames_per_video else usable
                out += [dict(source=usable[0], driving=d, sequence_id=vid) for d in driving]
        return out, faceless

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
        if 'usable' in info:                       # train: a fresh pair on every visit
            s, d = (int(i) for i in np.random.choice(info['usable'], 2, replace=False))
        else:
            s, d = info['source'], info['driving']
        frames, attrs, mirrored = self.videos[info['sequence_id']]
        source, driving = self._read(frames[s]), self._read(frames[d])
        if 'usable' in info:
            if mirrored is not None and np.random.rand() < 0.5 and \
                    np.isfinite(mirrored[[s, d]]).all():
                source, driving, attrs = source.flip(-1), driving.flip(-1), mirrored
            if self.colour_jitter:
                source, driving = jitter_pair(source, driving, self.colour_jitter)
        return dict(source=source, driving=driving,
                    source_attributes=torch.from_numpy(attrs[s]),
                    driving_attributes=torch.from_numpy(attrs[d]),
                    sequence_id=info['sequence_id'], frame=d, label=-1)


def jitter_pair(a: torch.Tensor, b: torch.Tensor, strength: dict) -> tuple:
    """One colour jitter for two (3, H, W) frames in [-1, 1]: torchvision's ColorJitter with
    ``strength`` on the stacked pair draws its factors and order once for both."""
    from torchvision.transforms.v2 import ColorJitter
    frames = ColorJitter(**strength)(torch.stack([a, b]).add(1).div(2))
    frames = frames.clamp(0, 1).mul(2).sub(1)
    return frames[0], frames[1]
