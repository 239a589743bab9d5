"""Fashion Scenes: detection and semantic-segmentation canvases composed of Fashion-MNIST items.

Each canvas holds several tinted Fashion-MNIST items at varied scale and position over a smooth
textured background; later items may partly cover earlier ones. An item's pixels are those whose
resized intensity passes ``mask_threshold``; exactly those pixels are pasted, so the per-pixel
masks, the semantic label map and the boxes (tight around the visible pixels) are exact.

Train canvases use only Fashion-MNIST train items, val canvases only test items. The same seed
gives byte-identical files.

Layout under ``out_dir``::

    annotations/instances_{train,val}.json   COCO detection (bbox, RLE segmentation, area)
    {train,val}/images/000000.png            RGB canvases
    {train,val}/labels/000000.png            uint8 label map: 0 background, 1..10 the classes
    meta.json                                the generation parameters and annotation format

Each annotation also records the item's Fashion-MNIST index and its ``tint`` (RGB in [0, 1], max
channel 1), from which ``FashionVocabulary`` writes colour words for captions.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist

SEG_CLASSES = ('background', ) + FASHION_MNIST_CLASSES
# 2: annotations carry each item's ``tint`` (the colour its pixels were multiplied by)
ANNOTATION_FORMAT = 2
SEG_PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
               (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
               (250, 190, 212)]


@dataclass(frozen=True)
class SceneConfig:
    """Parameters of the generated set (all written to ``meta.json``)."""

    num_train: int = 4000
    num_val: int = 500
    canvas_size: int = 128
    min_items: int = 2
    max_items: int = 5
    min_item_size: int = 28
    max_item_size: int = 60
    mask_threshold: int = 24        # resized item intensity (0-255) that counts as the object
    min_visible: float = 0.6        # each item keeps at least this fraction of its pixels
    max_tries: int = 30             # placements tried per item before it is left out
    seed: int = 0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random texture, (size, size, 3) uint8 in [0, 70]."""
    coarse = rng.uniform(0, 70, size=(4, 4, 3)).astype(np.float32)
    img = np.stack([np.asarray(Image.fromarray(coarse[..., c]).resize((size, size),
                                                                      Image.BICUBIC))
                    for c in range(3)], axis=-1)
    img = img + rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 70).astype(np.uint8)


def _tint(rng: np.random.Generator) -> np.ndarray:
    """A random colour (3,) in [0.35, 1], at least one channel near 1."""
    color = rng.uniform(0.35, 1.0, size=3)
    return color / color.max()


def compose_canvas(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray,
                   cfg: SceneConfig, tint=None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Compose one canvas.

    Args:
        rng: the generator that decides everything random.
        items: (N, 28, 28) uint8 source pool; labels: (N,) class indices.
        tint: ``rng -> (3,) colour`` for each item (default: a random colour, see ``_tint``).

    Returns:
        image (S, S, 3) uint8, instance map (S, S) int32 (0 background, i+1 the i-th object),
        and per object dict(label, source_index, full_area, tint).
    """
    tint = tint or _tint
    size = cfg.canvas_size
    image = _background(rng, size)
    instance = np.zeros((size, size), np.int32)
    objects: list[dict] = []
    for _ in range(int(rng.integers(cfg.min_items, cfg.max_items + 1))):
        src = int(rng.integers(len(items)))
        side = int(rng.integers(cfg.min_item_size, cfg.max_item_size + 1))
        item = np.asarray(Image.fromarray(items[src]).resize((side, side), Image.BILINEAR))
        mask = item >= cfg.mask_threshold
        colour = tint(rng)
        pixels = (item[..., None] * colour).round().clip(0, 255).astype(np.uint8)
        for _ in range(cfg.max_tries):
            y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            trial = instance.copy()
            trial[y:y + side, x:x + side][mask] = len(objects) + 1
            # Every earlier object must keep enough of its pixels.
            ok = all((trial == i + 1).sum() >= cfg.min_visible * o['full_area']
                     for i, o in enumerate(objects))
            if ok:
                instance = trial
                image[y:y + side, x:x + side][mask] = pixels[mask]
                objects.append(dict(label=int(labels[src]), source_index=src,
                                    full_area=int(mask.sum()),
                                    tint=[round(float(c), 4) for c in colour]))
                break
    return image, instance, objects


def item_on_background(rng: np.random.Generator, item: np.ndarray, size: int,
                       min_side: int, max_side: int, mask_threshold: int = 24,
                       tint=None) -> tuple[np.ndarray, list[int], np.ndarray]:
    """One tinted item pasted at a random scale and place on a Fashion Scenes background: an
    image-level sample that looks like a crop of a canvas.

    Args:
        item: (28, 28) uint8; size: the image side; min_side / max_side: the item's side range.
        tint: ``rng -> (3,) colour`` (default: a random colour, see ``_tint``).

    Returns:
        image (size, size, 3) uint8, the box of the item's visible pixels [x, y, w, h] and its
        tint (3,).
    """
    image = _background(rng, size)
    side = int(rng.integers(min_side, min(max_side, size) + 1))
    resized = np.asarray(Image.fromarray(item).resize((side, side), Image.BILINEAR))
    mask = resized >= mask_threshold
    colour = (tint or _tint)(rng)
    pixels = (resized[..., None] * colour).round().clip(0, 255).astype(np.uint8)
    y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    image[y:y + side, x:x + side][mask] = pixels[mask]
    full = np.zeros((size, size), bool)
    full[y:y + side, x:x + side] = mask
    return image, _bbox_xywh(full), colour


def _bbox_xywh(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def make_fashion_scenes(out_dir: str | Path, cfg: SceneConfig = SceneConfig(),
                        fashion_mnist_root: str | None = None, progress: bool = True) -> Path:
    """Write the train and val sets under ``out_dir`` (see the module docstring).

    Returns the output folder.
    """
    from pycocotools import mask as mask_utils

    out = Path(out_dir)
    (out / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(FASHION_MNIST_CLASSES)]
    for split, source, count, offset in (('train', 'train', cfg.num_train, 0),
                                         ('val', 'test', cfg.num_val, 1)):
        items, labels = load_fashion_mnist(source, fashion_mnist_root)
        rng = np.random.default_rng([cfg.seed, offset])
        for sub in ('images', 'labels'):
            (out / split / sub).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        indices = range(count)
        if progress:
            from rich.progress import track
            indices = track(indices, description=f'fashion scenes: {split}')
        for idx in indices:
            image, instance, objects = compose_canvas(rng, items, labels, cfg)
            name = f'{idx:06d}.png'
            Image.fromarray(image).save(out / split / 'images' / name)
            seg = np.zeros_like(instance, dtype=np.uint8)
            for i, obj in enumerate(objects):
                seg[instance == i + 1] = obj['label'] + 1
            Image.fromarray(seg).save(out / split / 'labels' / name)
            images.append(dict(id=idx, file_name=name, width=cfg.canvas_size,
                               height=cfg.canvas_size))
            for i, obj in enumerate(objects):
                mask = instance == i + 1
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                rle['counts'] = rle['counts'].decode('ascii')
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=idx, category_id=obj['label'] + 1,
                    bbox=_bbox_xywh(mask), area=int(mask.sum()), segmentation=rle, iscrowd=0,
                    fashion_mnist_split=source, fashion_mnist_index=obj['source_index'],
                    tint=obj['tint']))
        coco = dict(info=dict(description=f'Fashion Scenes {split} (mmext), seed {cfg.seed}'),
                    images=images, annotations=annotations, categories=categories)
        with open(out / 'annotations' / f'instances_{split}.json', 'w') as f:
            json.dump(coco, f)
    with open(out / 'meta.json', 'w') as f:
        json.dump(dict(asdict(cfg), classes=list(FASHION_MNIST_CLASSES),
                       format=ANNOTATION_FORMAT), f, indent=2)
    return out

