"""Caption pretraining of the demo CLIP (v2), and the cached folder that holds the result.

No CLIP weights can be had on the machines this project is built on, so the demos stand on a small
CLIP pretrained here (``DemoCLIPRecipe``): ImageNet MobileNetV2 with a dilated last stage (stride
16) and the frozen all-MiniLM-L6-v2 sentence encoder, trained contrastively on captioned images of
Fashion-MNIST *train* items of all 10 classes (``captioned_scene``: one item at a random scale or
a small canvas of several; captions from ``fashion_vocabulary.json`` with synonyms, colour, size,
position and count words). Every downstream evaluation uses *test* items, so, as with a real CLIP,
the model has seen every concept and the open-vocabulary split lives in the downstream labels.

``demo_clip_folder()`` is the cached build (``$MMEXT_CACHE/demo_clip/v2-<recipe hash>``, outside
the clone like the mmcv wheel); ``ensure_demo_clip()`` builds it on first use under a file lock,
in a temporary folder renamed when complete, so a killed build never leaves a half folder behind.
``OpenCLIPModel('mmext:demo-clip')`` resolves to it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmext.datasets.fashion_captions import VOCABULARY_FILE, FashionVocabulary, captioned_scene
from mmext.utils.cache import cache_root

from .demo_clip import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_initial_demo_clip,
    prepare_folder,
    save_weights,
)

DEMO_CLIP_ALIAS = 'mmext:demo-clip'
# Bump when the training procedure changes (the cache folder's name changes with it, so every
# user rebuilds); edits that leave the weights as they are need no bump.
TRAINING_CODE_VERSION = 1
BUILD_FILE = 'build.json'


@dataclass(frozen=True)
class DemoCLIPRecipe:
    """Everything that decides the demo CLIP's weights (with the vocabulary file and this code)."""

    iters: int = 450
    batch_size: int = 64
    image_size: int = 96
    embed_dim: int = 256
    single_prob: float = 0.5          # share of one-item images; the rest hold 2 to max_items
    max_items: int = 4
    train_from_block: int = 3         # MobileNetV2 stem and blocks before this one stay frozen
    train_text_layers: int = 1        # top MiniLM layers that train (the rest stay frozen)
    trunk_lr: float = 3e-4
    head_lr: float = 3e-3
    weight_decay: float = 1e-4
    class_loss_weight: float = 1.0    # captions 'a photo of a {class}.' of all 10 classes
    seed: int = 0

    def key(self) -> str:
        """Hash of the recipe, the vocabulary file and ``TRAINING_CODE_VERSION``: the cache
        folder's name."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        digest.update(VOCABULARY_FILE.read_bytes())
        digest.update(f'training code v{TRAINING_CODE_VERSION}'.encode())
        return digest.hexdigest()[:12]


def demo_clip_folder(recipe: DemoCLIPRecipe = DemoCLIPRecipe()) -> Path:
    """Where the demo CLIP of ``recipe`` lives (built or not)."""
    return cache_root() / 'demo_clip' / f'v2-{recipe.key()}'


def is_complete(folder: Path) -> bool:
    """A finished build: config, weights and ``build.json`` (written last)."""
    return all((folder / name).is_file() for name in
               ('open_clip_config.json', 'open_clip_model.safetensors', BUILD_FILE))


def ensure_demo_clip(recipe: DemoCLIPRecipe = DemoCLIPRecipe(), progress: bool = True) -> Path:
    """The cached demo CLIP folder, built first if missing (about 8 minutes on 2 CPU cores)."""
    folder = demo_clip_folder(recipe)
    if is_complete(folder):
        return folder
    import fcntl
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f'{folder.name}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if is_complete(folder):
            return folder
        from mmengine.logging import print_log
        print_log(f'building the demo CLIP into {folder} (once; about 8 minutes on 2 CPU '
                  'cores; `make demo-clip` does the same)', logger='current')
        partial = folder.with_name(folder.name + '.partial')
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        train_demo_clip(partial, recipe, progress=progress)
        partial.rename(folder)
    return folder


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) normalised like ImageNet."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def content_key(objects, vocab: FashionVocabulary) -> tuple:
    """What a caption of the image always says: its items' classes and colours (a multiset)."""
    return tuple(sorted((o.label, vocab.colour_of(o.tint)) for o in objects))


def soft_targets(keys: list[tuple]) -> torch.Tensor:
    """(B, B) row-normalised: image i and caption j match when their contents are equal, so two
    images of a red bag in one batch are no false negatives of each other."""
    same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.float32)
    return same / same.sum(1, keepdim=True)


def class_targets(objects_per_image, num_classes: int) -> torch.Tensor:
    """(B, C): each image's share of items per class (one-hot for one item)."""
    counts = torch.zeros(len(objects_per_image), num_classes)
    for i, objects in enumerate(objects_per_image):
        for obj in objects:
            counts[i, obj.label] += 1
    return counts / counts.sum(1, keepdim=True)


def trim_padding(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Drop the columns that are padding in every row: the masked mean pooling of the text tower
    gives the same features, at the cost of the longest caption instead of the context length."""
    used = int((tokens != pad_id).any(0).nonzero().max()) + 1
    return tokens[:, :used]


def _trainable_parameters(model, recipe: DemoCLIPRecipe):
    """Freeze what the recipe keeps fixed; return the (trunk, head + text) parameter groups."""
    trunk = model.visual.trunk
    frozen = [trunk.conv_stem, trunk.bn1, *trunk.blocks[:recipe.train_from_block]]
    for part in frozen:
        part.requires_grad_(False)
    text = model.text.transformer
    text.requires_grad_(False)
    layers = text.encoder.layer
    for layer in layers[len(layers) - recipe.train_text_layers:]:
        layer.requires_grad_(True)
    trunk_params = [p for p in trunk.parameters() if p.requires_grad]
    other = [p for p in model.visual.head.parameters()] + [
        p for p in model.text.parameters() if p.requires_grad] + [model.logit_scale]
    return frozen, trunk_params, other


def train_demo_clip(folder: str | Path, recipe: DemoCLIPRecipe = DemoCLIPRecipe(),
                    progress: bool = True, fashion_mnist_root: str | None = None) -> Path:
    """Pretrain the demo CLIP by ``recipe`` and write it as an open_clip ``local-dir`` folder.

    Each step: ``batch_size`` captioned images (``captioned_scene``), one random caption each;
    symmetric cross-entropy between image and caption embeddings with soft targets over equal
    contents (``soft_targets``) and CLIP's learned temperature (clamped at 100), plus
    ``class_loss_weight`` x cross-entropy of each image against the captions
    ``'<template> <class>'`` of all 10 classes (one random zero-shot template per step; the target
    is the image's share of items per class): hard negatives that a batch of 64 rarely holds
    (a shirt against a T-shirt, a coat and a pullover). The image trunk
    from ``train_from_block`` on, the top ``train_text_layers`` MiniLM layers and both
    projections train; frozen parts keep their ImageNet BatchNorm statistics.
    """
    from mmext.datasets.fashion_mnist import load_fashion_mnist
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    vocab = FashionVocabulary()
    items, labels = load_fashion_mnist('train', fashion_mnist_root)
    folder = prepare_folder(folder, embed_dim=recipe.embed_dim, image_size=recipe.image_size)
    model = build_initial_demo_clip(folder)
    tokenizer = model_tokenizer(folder)
    pad_id = model.text.config.pad_token_id
    frozen, trunk_params, other = _trainable_parameters(model, recipe)
    optimizer = torch.optim.AdamW([dict(params=trunk_params, lr=recipe.trunk_lr),
                                   dict(params=other, lr=recipe.head_lr)],
                                  weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[recipe.trunk_lr, recipe.head_lr], total_steps=recipe.iters,
        pct_start=0.1)
    model.train()
    for part in frozen:
        part.eval()
    start, losses = time.time(), []
    from rich.progress import Progress
    with Progress(disable=not progress) as bar:
        task = bar.add_task('demo CLIP', total=recipe.iters)
        for _ in range(recipe.iters):
            scenes = [captioned_scene(rng, items, labels, recipe.image_size, vocab,
                                      recipe.single_prob, recipe.max_items)
                      for _ in range(recipe.batch_size)]
            captions = [vocab.describe(objects, recipe.image_size, rng) for _, objects in scenes]
            template = vocab.zero_shot_templates[int(rng.integers(len(vocab.zero_shot_templates)))]
            targets = soft_targets([content_key(objects, vocab) for _, objects in scenes])
            image = model.encode_image(to_model_input(np.stack([s[0] for s in scenes])),
                                       normalize=True)
            tokens = trim_padding(tokenizer(captions + vocab.class_prompts(template)), pad_id)
            text = model.encode_text(tokens, normalize=True)
            text, class_text = text[:len(captions)], text[len(captions):]
            scale = model.logit_scale.exp()
            logits = scale * image @ text.T
            loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T)) / 2
            if recipe.class_loss_weight:
                class_logits = scale * image @ class_text.T
                loss = loss + recipe.class_loss_weight * F.cross_entropy(
                    class_logits, class_targets([o for _, o in scenes], len(vocab.class_names)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            losses.append(loss.item())
            bar.update(task, advance=1, description=f'demo CLIP  loss {loss.item():.3f}')
    save_weights(model, folder)
    build = dict(recipe=asdict(recipe), recipe_key=recipe.key(), version=2,
                 train_minutes=round((time.time() - start) / 60, 1),
                 final_loss=float(np.mean(losses[-20:])), torch=torch.__version__,
                 data='Fashion-MNIST train items of all 10 classes (captioned_scene)',
                 vocabulary=str(VOCABULARY_FILE.name))
    (Path(folder) / BUILD_FILE).write_text(json.dumps(build, indent=2))
    return Path(folder)


def model_tokenizer(folder: str | Path):
    """The tokenizer of a demo CLIP folder (MiniLM's WordPiece, context length of the config)."""
    import open_clip
    return open_clip.get_tokenizer(f'local-dir:{folder}')
