"""The demo CLIP's card: what the stand-in CLIP can do, measured on Fashion-MNIST *test* items only.

    python benchmarks/demo_clip.py                      # the cached demo CLIP (built if missing)
    python benchmarks/demo_clip.py --clip local-dir:work_dirs/my_clip --results /tmp/card.json

Figures (every one zero-shot: prompts from ``fashion_vocabulary.json``, no training on the task):

- ``zero_shot_top1``: 10-way classification of single test items on a Fashion Scenes background
  (a random tint and scale, the old stand-in's protocol), prompt ensemble of the vocabulary's
  ``zero_shot_templates`` over all 10 class names; per class too;
- ``colour_top1``: the colour word of test items tinted with the vocabulary's colours (anchor +
  jitter), among the 9 colour words, prompts ``colour_templates`` ensembled over every class
  noun (no class label is used); ``colour_top1_scene_tints``: the same for the continuous random
  tints of the Fashion Scenes canvases, whose word is the nearest anchor (harder: tints between
  two anchors);
- ``retrieval``: text-to-image Recall@1/5/10 over the 500 Fashion Scenes val canvases, one caption
  per canvas written from its exact metadata (``FashionVocabulary.describe``, fixed seed);
- ``dense_segmentation``: per-pixel zero-shot segmentation of the val canvases (resized to 256 px:
  a 16 x 16 grid for the v2 tower), each cell classified among the 10 class prompts, logits
  upsampled bilinearly; mIoU over the 10 classes with background pixels ignored (the MVP-SEG
  demo's zero-shot protocol).

Writes ``benchmarks/results/demo_clip.json``; the old stand-in's figures are kept beside it under
``previous`` when they are known.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmext.clip import OpenCLIPModel  # noqa: E402
from mmext.clip.demo_clip_training import DEMO_CLIP_ALIAS, to_model_input  # noqa: E402
from mmext.datasets.fashion_captions import FashionVocabulary, objects_of_annotations  # noqa: E402
from mmext.datasets.fashion_mnist import load_fashion_mnist  # noqa: E402
from mmext.datasets.fashion_scenes import item_on_background  # noqa: E402
from mmext.utils.atomic import atomic_write  # noqa: E402
from mmext.utils.run_logs import relative_paths  # noqa: E402

RESULTS = REPO / 'benchmarks/results/demo_clip.json'


@torch.no_grad()
def encode_images(clip: OpenCLIPModel, images: np.ndarray, batch: int = 100) -> torch.Tensor:
    return torch.cat([clip.encode_image(to_model_input(images[i:i + batch]))
                      for i in range(0, len(images), batch)])


@torch.no_grad()
def prompt_weights(clip: OpenCLIPModel, prompt_sets: list[list[str]]) -> torch.Tensor:
    """(C, D): per entry, the normalised mean of its prompts' normalised embeddings (CLIP's
    prompt ensembling for prompt sets that are not one template list over class names: the
    colour prompts; classes go through ``OpenCLIPModel.zero_shot_weights``)."""
    return F.normalize(torch.stack([clip.encode_text(p).mean(0) for p in prompt_sets]), dim=-1)


def single_items(items, labels, per_class: int, size: int, seed: int, tint=None):
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in range(10)])
    images, tints = [], []
    for i in chosen:
        image, _, colour = item_on_background(rng, items[i], size, min_side=size // 3,
                                              max_side=size, tint=tint)
        images.append(image)
        tints.append(colour)
    return np.stack(images), labels[chosen], tints


def zero_shot(clip, vocab, items, labels, per_class, size, seed) -> dict:
    images, truth, _ = single_items(items, labels, per_class, size, seed)
    weights = clip.zero_shot_weights(vocab.class_names, vocab.zero_shot_templates)
    pred = (encode_images(clip, images) @ weights.T).argmax(-1).numpy()
    per_class = {name: float((pred[truth == k] == k).mean())
                 for k, name in enumerate(vocab.class_names)}
    return dict(zero_shot_top1=float((pred == truth).mean()), zero_shot_per_class=per_class,
                templates=vocab.zero_shot_templates, images=len(truth))


def colours(clip, vocab, items, labels, per_class, size, seed) -> dict:
    weights = prompt_weights(clip, [vocab.colour_prompts(c) for c in vocab.colour_names])
    result = {}
    for name, tint in (('colour_top1', vocab.sample_tint), ('colour_top1_scene_tints', None)):
        images, _, tints = single_items(items, labels, per_class, size, seed + 1, tint=tint)
        truth = np.array([vocab.colour_names.index(vocab.colour_of(t)) for t in tints])
        pred = (encode_images(clip, images) @ weights.T).argmax(-1).numpy()
        result[name] = float((pred == truth).mean())
        if tint is not None:
            result['colour_per_word'] = {c: float((pred[truth == k] == k).mean())
                                         for k, c in enumerate(vocab.colour_names)}
    return result


def val_canvases(root: Path, limit: int | None):
    from PIL import Image
    coco = json.loads((root / 'annotations/instances_val.json').read_text())
    by_image: dict[int, list] = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    images = coco['images'][:limit] if limit else coco['images']
    pixels = np.stack([np.asarray(Image.open(root / 'val/images' / im['file_name']).convert('RGB'))
                       for im in images])
    label_maps = np.stack([np.asarray(Image.open(root / 'val/labels' / im['file_name']))
                           for im in images])
    objects = [objects_of_annotations(by_image.get(im['id'], [])) for im in images]
    return pixels, label_maps, objects


@torch.no_grad()
def retrieval(clip, vocab, pixels, objects, seed) -> dict:
    rng = np.random.default_rng(seed)
    keep = [i for i, objs in enumerate(objects) if objs]
    captions = [vocab.describe(objects[i], pixels.shape[1], rng) for i in keep]
    image = encode_images(clip, pixels[keep])
    text = torch.cat([clip.encode_text(captions[i:i + 100]) for i in range(0, len(keep), 100)])
    sims = text @ image.T  # (queries, gallery); query i's image is gallery i
    rank = (sims > sims.diagonal()[:, None]).sum(1)  # images scoring above the right one
    return dict(recall={f'R@{k}': float((rank < k).float().mean()) for k in (1, 5, 10)},
                queries=len(keep), gallery=len(keep), caption_examples=captions[:5])


@torch.no_grad()
def dense_segmentation(clip, vocab, pixels, label_maps, input_size: int = 256) -> dict:
    weights = clip.zero_shot_weights(vocab.class_names, vocab.zero_shot_templates)
    num = len(vocab.class_names)
    confusion = np.zeros((num, num), np.int64)
    grid = None
    for start in range(0, len(pixels), 25):
        x = to_model_input(pixels[start:start + 25])
        x = F.interpolate(x, size=(input_size, input_size), mode='bilinear', align_corners=False)
        dense, _ = clip.dense_features(x)
        grid = tuple(dense.shape[-2:])
        logits = torch.einsum('bdhw,cd->bchw', dense, weights)
        logits = F.interpolate(logits, size=label_maps.shape[1:], mode='bilinear',
                               align_corners=False)
        pred = logits.argmax(1).numpy()
        truth = label_maps[start:start + 25].astype(np.int64) - 1  # background -> -1, ignored
        valid = truth >= 0
        confusion += np.bincount(num * truth[valid] + pred[valid],
                                 minlength=num * num).reshape(num, num)
    iou = np.diag(confusion) / (confusion.sum(0) + confusion.sum(1) - np.diag(confusion))
    return dict(mIoU=float(np.nanmean(iou)) * 100, dense_grid=list(grid), input_size=input_size,
                per_class_iou={n: float(v) * 100 for n, v in zip(vocab.class_names, iou)})


def card(clip_name: str, per_class: int, val_limit: int | None, seed: int,
         data_root: Path) -> dict:
    start = time.time()
    clip = OpenCLIPModel(clip_name)
    size = int(clip.clip.visual.image_size[0])
    vocab = FashionVocabulary()
    items, labels = load_fashion_mnist('test')
    pixels, label_maps, objects = val_canvases(data_root, val_limit)
    result = dict(clip=clip_name, image_size=size)
    result.update(zero_shot(clip, vocab, items, labels, per_class, size, seed))
    result.update(colours(clip, vocab, items, labels, per_class, size, seed))
    result['retrieval'] = retrieval(clip, vocab, pixels, objects, seed)
    result['dense_segmentation'] = dense_segmentation(clip, vocab, pixels, label_maps)
    folder = Path(clip_name.split(':', 1)[1]) if ':' in clip_name else None
    if clip_name == DEMO_CLIP_ALIAS:
        from mmext.clip.demo_clip_training import demo_clip_folder
        folder = demo_clip_folder()
    if folder is not None and (folder / 'build.json').is_file():
        result['build'] = json.loads((folder / 'build.json').read_text())
    result['evaluation_minutes'] = round((time.time() - start) / 60, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--clip', default=DEMO_CLIP_ALIAS,
                        help='OpenCLIPModel name (default: the cached demo CLIP, built if missing)')
    parser.add_argument('--per-class', type=int, default=100, help='test items per class')
    parser.add_argument('--val-images', type=int, help='first N val canvases (default: all)')
    parser.add_argument('--data-root', type=Path, default=REPO / 'data/fashion_scenes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--results', type=Path, default=RESULTS)
    args = parser.parse_args()
    result = card(args.clip, args.per_class, args.val_images, args.seed, args.data_root)
    result['command'] = 'python benchmarks/demo_clip.py ' + ' '.join(sys.argv[1:])
    previous = json.loads(args.results.read_text()).get('previous') if args.results.is_file() \
        else None
    if previous:
        result['previous'] = previous
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.results, json.dumps(relative_paths(result, REPO), indent=2) + '\n')
    summary = {k: result[k] for k in ('zero_shot_top1', 'colour_top1', 'colour_top1_scene_tints')}
    summary.update(result['retrieval']['recall'], dense_mIoU=result['dense_segmentation']['mIoU'])
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
