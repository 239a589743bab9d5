"""Train the demo CLIP (a stand-in: no real CLIP weights can be had here) and write it as an
open_clip ``local-dir`` folder that ``mmext.OpenCLIPModel('local-dir:<folder>')`` loads.

    python tools/clip/train_demo_clip.py [--out work_dirs/demo_clip] [--iters 600]

Model (``mmext/clip/demo_clip.py``): ImageNet MobileNetV2 image tower (timm layout, fine-tuned)
and the frozen all-MiniLM-L6-v2 sentence encoder, each with a linear projection into a 256-d
joint space. Data: Fashion-MNIST train items of the *trained* classes, tinted and pasted at a
random scale on the Fashion Scenes backgrounds (64 x 64), captioned by templates. The
``--held-out`` classes are never shown. Zero-shot top-1 on test items of every class (template
ensemble) goes to ``<out>/zero_shot.json``: with all 10 names as candidates, and for the
held-out classes also among the held-out names only (``--eval-only`` recomputes it).

Loss: cross-entropy of each image against the captions of all trained classes (one random
template per class and step), with CLIP's learned temperature; captions of one class share a
target, so repeated classes in a batch are no false negatives.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # mmext from a plain clone too
os.environ.setdefault('HF_HUB_OFFLINE', '1')

from mmext.clip.demo_clip import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_initial_demo_clip,
    prepare_folder,
    save_weights,
)
from mmext.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist  # noqa: E402
from mmext.datasets.fashion_scenes import item_on_background  # noqa: E402

TEMPLATES = ('a photo of a {}.', 'a {}.', 'a picture of a {}.', 'a photo of the {}.',
             'a {} on a dark background.', 'a coloured {}.', 'a small {}.', 'a large {}.')
HELD_OUT = ('Shirt', 'Sneaker')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=Path('work_dirs/demo_clip'))
    parser.add_argument('--iters', type=int, default=400)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--train-from-block', type=int, default=4,
                        help='MobileNetV2 blocks before this one (and the stem) stay frozen')
    parser.add_argument('--embed-dim', type=int, default=256)
    parser.add_argument('--held-out', nargs='*', default=list(HELD_OUT),
                        help='classes never trained on (their zero-shot accuracy is reported)')
    parser.add_argument('--eval-per-class', type=int, default=100,
                        help='test items per class for the zero-shot evaluation')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eval-only', action='store_true',
                        help='only (re)write zero_shot.json of the folder given by --out')
    return parser.parse_args()


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) normalised like ImageNet."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def make_batch(rng, items, labels, indices, size):
    images = np.stack([item_on_background(rng, items[i], size, min_side=size // 3,
                                          max_side=size) for i in indices])
    return to_tensor(images), torch.as_tensor(labels[indices], dtype=torch.long)


@torch.no_grad()
def pooled_text_features(model, tokenizer, captions: list[str]) -> torch.Tensor:
    """MiniLM's mean-pooled sentence features (before the trained projection)."""
    text = model.text
    tokens = tokenizer(captions)
    mask = (tokens != text.config.pad_token_id).long()
    return text.pooler(text.transformer(input_ids=tokens, attention_mask=mask), mask)


@torch.no_grad()
def zero_shot(model, tokenizer, items, labels, per_class: int, size: int, seed: int,
              held_out: list[str]) -> dict:
    """Top-1 per class (template ensemble), with two candidate sets:

    - ``all``: all 10 class names (generalised zero-shot for the held-out classes: they compete
      with the trained ones);
    - ``held_out``: the held-out names only (conventional zero-shot: chance 1 / #held-out).
    """
    model.eval()
    classes = list(FASHION_MNIST_CLASSES)
    from open_clip import build_zero_shot_classifier  # prompt ensembling, as in OpenCLIPModel
    weights = build_zero_shot_classifier(model, tokenizer, classes,
                                         [t.format for t in TEMPLATES]).T  # (10, D)
    held = [classes.index(c) for c in held_out]
    rng = np.random.default_rng([seed, 1])
    top1_all, top1_held = {}, {}
    for k, name in enumerate(classes):
        idx = np.flatnonzero(labels == k)[:per_class]
        x, _ = make_batch(rng, items, labels, idx, size)
        scores = model.encode_image(x, normalize=True) @ weights.T
        top1_all[name] = float((scores.argmax(-1) == k).float().mean())
        if k in held:
            pred = torch.tensor(held)[scores[:, held].argmax(-1)]
            top1_held[name] = float((pred == k).float().mean())
    return dict(
        per_class_top1=top1_all,
        top1_trained=float(np.mean([v for c, v in top1_all.items() if c not in held_out])),
        top1_held_out_among_all=float(np.mean([top1_all[c] for c in held_out])) if held else None,
        top1_held_out_among_held_out=float(np.mean(list(top1_held.values()))) if held else None,
        per_class_top1_among_held_out=top1_held,
        chance_among_all=1 / len(classes),
        chance_among_held_out=1 / len(held) if held else None)


def evaluate(model, tokenizer, folder: Path, args, extra: dict) -> None:
    """Zero-shot on Fashion-MNIST test items; written to ``<folder>/zero_shot.json``."""
    test_items, test_labels = load_fashion_mnist('test')
    summary = zero_shot(model, tokenizer, test_items, test_labels, args.eval_per_class,
                        args.image_size, args.seed, list(args.held_out))
    summary.update(held_out=list(args.held_out), eval_images_per_class=args.eval_per_class,
                   eval_seed=args.seed, templates=list(TEMPLATES), **extra)
    with open(folder / 'zero_shot.json', 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps({k: summary[k] for k in (
        'per_class_top1', 'top1_trained', 'top1_held_out_among_all',
        'top1_held_out_among_held_out')}, indent=2))


def main():
    args = parse_args()
    unknown = set(args.held_out) - set(FASHION_MNIST_CLASSES)
    if unknown:
        raise SystemExit(f'--held-out: unknown classes {sorted(unknown)}; the classes are '
                         f'{list(FASHION_MNIST_CLASSES)}')
    if args.eval_only:
        from mmext.clip import OpenCLIPModel
        clip = OpenCLIPModel(f'local-dir:{args.out}')
        previous = json.loads((args.out / 'zero_shot.json').read_text()) if (
            args.out / 'zero_shot.json').is_file() else {}
        keep = {k: previous[k] for k in ('trained_classes', 'iters', 'batch_size',
                                         'train_minutes', 'train_seed') if k in previous}
        evaluate(clip.clip, clip.tokenizer, args.out, args, keep)
        return
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    folder = prepare_folder(args.out, embed_dim=args.embed_dim, image_size=args.image_size)
    model = build_initial_demo_clip(folder)
    import open_clip
    tokenizer = open_clip.get_tokenizer(f'local-dir:{folder}')
    model.text.transformer.requires_grad_(False)
    trunk = model.visual.trunk
    frozen_parts = [trunk.conv_stem, trunk.bn1, *trunk.blocks[:args.train_from_block]]
    for part in frozen_parts:
        part.requires_grad_(False)

    classes = list(FASHION_MNIST_CLASSES)
    trained = [k for k, c in enumerate(classes) if c not in args.held_out]
    items, labels = load_fashion_mnist('train')
    keep = np.isin(labels, trained)
    items, labels = items[keep], labels[keep]
    # caption features of the trained classes, (T, C_trained, 384): the text transformer is frozen
    captions = torch.stack([pooled_text_features(model, tokenizer, [t.format(classes[k]) for k in trained])
                            for t in TEMPLATES])
    target_of = torch.full((len(classes), ), -1, dtype=torch.long)
    target_of[trained] = torch.arange(len(trained))

    params = [dict(params=[p for p in trunk.parameters() if p.requires_grad], lr=2e-4),
              dict(params=list(model.visual.head.parameters()) + list(model.text.proj.parameters())
                   + [model.logit_scale], lr=2e-3)]
    optimizer = torch.optim.AdamW(params, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[2e-4, 2e-3], total_steps=args.iters, pct_start=0.1)
    from rich.progress import Progress
    start = time.time()
    model.train()
    model.text.eval()
    for part in frozen_parts:  # keep ImageNet BatchNorm statistics where nothing trains
        part.eval()
    with Progress() as progress:
        task = progress.add_task('demo CLIP', total=args.iters)
        for _ in range(args.iters):
            idx = rng.choice(len(items), args.batch_size, replace=False)
            x, y = make_batch(rng, items, labels, idx, args.image_size)
            image = model.encode_image(x, normalize=True)
            template = torch.as_tensor(rng.integers(len(TEMPLATES), size=len(trained)))
            text = F.normalize(model.text.proj(captions[template, torch.arange(len(trained))]),
                               dim=-1)
            logits = model.logit_scale.exp() * image @ text.T
            loss = F.cross_entropy(logits, target_of[y])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            progress.update(task, advance=1,
                            description=f'demo CLIP  loss {loss.item():.3f}')
    minutes = (time.time() - start) / 60
    save_weights(model, folder)

    evaluate(model, tokenizer, folder, args, dict(
        trained_classes=[classes[k] for k in trained], iters=args.iters,
        batch_size=args.batch_size, image_size=args.image_size, train_minutes=round(minutes, 1),
        train_seed=args.seed))
    print(f'demo CLIP written to {folder} (load with OpenCLIPModel("local-dir:{folder}"))')


if __name__ == '__main__':
    main()
