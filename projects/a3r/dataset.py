"""Text-to-image retrieval data on the layout of the CVPR 2023 foundation-model challenge
(retrieval track): a text file with one image-text pair per line,

    <image file>$<attribute annotation>$<caption>

(e.g. ``pmitevanhx.jpg$A white Audi.$This is a white Audi sedan.``; the attribute field may be
empty), and a folder of images. One image may appear on several lines, and one caption may
describe several images: a caption matches every image that some line pairs it with
(captions compared after case and surrounding spaces are dropped).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmext.datasets import CorruptDataError, DataNotFoundError
from mmext.registry import DATASETS

SEPARATOR = '$'


@dataclass
class AnnotationLine:
    """One line of an annotation file."""

    image: str
    attributes: str
    caption: str


def read_annotations(path: str | Path) -> list[AnnotationLine]:
    """Parse an annotation file; a malformed line raises an error that names it."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f'annotation file {path} does not exist')
    try:
        text = path.read_text(encoding='utf-8')
    except UnicodeDecodeError as e:
        raise CorruptDataError(f'{path} is not UTF-8 text ({e})') from e
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        fields = raw.split(SEPARATOR)
        if len(fields) != 3:
            raise CorruptDataError(
                f'{path}, line {number}: expected "image$attributes$caption" (3 fields '
                f'separated by "$"), got {len(fields)} field(s): {raw[:80]!r}')
        image, attributes, caption = (f.strip() for f in fields)
        if not image:
            raise CorruptDataError(f'{path}, line {number}: no image file name')
        if not caption:
            raise CorruptDataError(f'{path}, line {number}: image {image} has no caption; '
                                   'every line needs one (a retrieval query is a caption)')
        lines.append(AnnotationLine(image, attributes, caption))
    if not lines:
        raise CorruptDataError(f'{path} holds no annotation line')
    return lines


def write_annotations(path: str | Path, lines: list[AnnotationLine]) -> None:
    """Write ``lines`` in the same layout (a '$' inside a field is refused)."""
    out = []
    for line in lines:
        fields = (line.image, line.attributes, line.caption)
        if any(SEPARATOR in f or '\n' in f for f in fields):
            raise ValueError(f'a field of {line} contains "$" or a line break')
        out.append(SEPARATOR.join(fields))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text('\n'.join(out) + '\n', encoding='utf-8')


def _key(caption: str) -> str:
    return ' '.join(caption.lower().split())


@DATASETS.register_module()
class TextImageRetrievalDataset(BaseDataset):
    """A retrieval set on the challenge's layout, for mmpretrain's retrieval loops.

    Training (``test_mode=False``): one item per line, ``dict(img_path, text, attributes,
    image_id, text_id)``. Evaluation (``test_mode=True``): one item per image, ``dict(img_path,
    image_id, text=[its captions], text_id=[their ids], gt_text_id=[ids of every caption that
    matches the image], gt_image_id=[for each of its captions, the ids of every image it
    matches]``), with text ids numbered image after image (the order in which a retrieval loop
    concatenates them); ``img_size`` and ``text_size`` count the gallery and the queries (one
    per line).

    Args:
        ann_file: the annotation file (relative to ``data_root``).
        data_prefix: the image folder (relative to ``data_root``), or ``dict(img_path=...)``.
        check_images: verify at load time that every image file exists (default True).
        carve: ``dict(fraction=0.05, part='val', seed=0)`` keeps a random ``fraction`` of the
            images (and all their captions) as a validation split, ``part='train'`` the rest:
            model selection on data carved from training, not on the test set.
        indices: in training, mmpretrain's subset of lines; in evaluation, a number N: the
            first N gallery images and their captions.
    """

    def __init__(self, ann_file: str, data_root: str = '', data_prefix: str | dict = '',
                 test_mode: bool = False, check_images: bool = True,
                 carve: dict | None = None, **kwargs):
        self.check_images = check_images
        if carve is not None:
            unknown = set(carve) - {'fraction', 'part', 'seed'}
            if unknown or carve.get('part') not in ('train', 'val') or \
                    not 0 < carve.get('fraction', 0) < 1:
                raise ValueError(f"carve must be dict(fraction=<in (0, 1)>, part='train' or "
                                 f"'val', seed=<int>), got {carve}")
        self.carve = carve
        # evaluation: ``indices=N`` keeps the first N images and their captions, renumbered
        # (the ground truth has to stay within the kept gallery)
        self.num_gallery = None
        if test_mode and kwargs.get('indices') is not None:
            indices = kwargs.pop('indices')
            if not isinstance(indices, int):
                raise ValueError('in test mode, indices must be a number of gallery images '
                                 f'(the first N are kept), got {indices!r}')
            self.num_gallery = indices
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix,
                         test_mode=test_mode, **kwargs)

    def load_data_list(self) -> list[dict]:
        lines = read_annotations(self.ann_file)
        folder = Path(self.data_prefix['img_path'])
        image_ids: dict[str, int] = {}
        for line in lines:
            image_ids.setdefault(line.image, len(image_ids))
        if self.carve is not None:  # a validation split carved from training, by image
            names = sorted(image_ids)
            order = np.random.default_rng(self.carve.get('seed', 0)).permutation(len(names))
            held = {names[i] for i in order[:round(len(names) * self.carve['fraction'])]}
            keep = held if self.carve['part'] == 'val' else set(names) - held
            lines = [line for line in lines if line.image in keep]
            image_ids = {}
            for line in lines:
                image_ids.setdefault(line.image, len(image_ids))
        if self.num_gallery is not None:
            image_ids = {k: v for k, v in image_ids.items() if v < self.num_gallery}
            lines = [line for line in lines if line.image in image_ids]
        if self.check_images:
            missing = [name for name in image_ids if not (folder / name).is_file()]
            if missing:
                raise DataNotFoundError(
                    f'{len(missing)} image(s) of {self.ann_file} are not in {folder}, e.g. '
                    f'{missing[:3]}; check data_root / data_prefix')
        images_of_caption: dict[str, set[int]] = {}
        for line in lines:
            images_of_caption.setdefault(_key(line.caption), set()).add(image_ids[line.image])
        self.img_size, self.text_size = len(image_ids), len(lines)
        if not self.test_mode:
            return [dict(img_path=str(folder / line.image), text=line.caption,
                         attributes=line.attributes, image_id=image_ids[line.image],
                         text_id=text_id) for text_id, line in enumerate(lines)]
        items = {name: dict(img_path=str(folder / name), image_id=i, text=[], text_id=[],
                            gt_text_id=[], gt_image_id=[]) for name, i in image_ids.items()}
        by_id = list(items.values())
        # text ids follow the images (a retrieval loop concatenates the texts item by item)
        grouped = sorted(lines, key=lambda line: image_ids[line.image])
        for text_id, line in enumerate(grouped):
            matches = sorted(images_of_caption[_key(line.caption)])
            item = items[line.image]
            item['text'].append(line.caption)
            item['text_id'].append(text_id)
            item['gt_image_id'].append(matches)
            for image_id in matches:
                by_id[image_id]['gt_text_id'].append(text_id)
        return by_id
