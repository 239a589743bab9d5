"""Captions of Fashion-MNIST items and Fashion Scenes canvases, written from exact scene metadata.

The words live in one data file, ``fashion_vocabulary.json`` beside this module (class names and
synonyms with plurals, colour anchors, size and position bins, counts, phrasings, zero-shot
templates). The demo CLIP is pretrained on captions made here; A3R's attribute tools read the same
file, so the two agree on what "red", "small" or "in the top left" mean.

    vocab = FashionVocabulary()
    obj = SceneObject(label=8, tint=(1.0, 0.4, 0.36), box=(10, 12, 30, 28))
    vocab.attributes(obj, image_side=96)  # {'class': 'Bag', 'colour': 'red', 'size': 'medium', ...}
    vocab.describe([obj], 96, rng)        # e.g. 'a medium red purse in the top left.'
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VOCABULARY_FILE = Path(__file__).with_name('fashion_vocabulary.json')
_A_BEFORE_VOWEL = re.compile(r'\b([Aa]) (?=[aeiouAEIOU])')


def _articles(text: str) -> str:
    """'a orange bag' -> 'an orange bag'."""
    return _A_BEFORE_VOWEL.sub(lambda m: m.group(1) + 'n ', text)


@dataclass(frozen=True)
class SceneObject:
    """One item of an image: Fashion-MNIST class index, tint (3 floats in [0, 1], max channel 1)
    and the box of its visible pixels (x, y, w, h) in pixels."""

    label: int
    tint: tuple[float, float, float]
    box: tuple[float, float, float, float]


class FashionVocabulary:
    """The attribute words of ``fashion_vocabulary.json`` and the caption writer built on them.

    Args:
        path: a vocabulary file (default: the one shipped beside this module).
    """

    def __init__(self, path: str | Path = VOCABULARY_FILE):
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as err:
            raise FileNotFoundError(f'vocabulary file {path} does not exist; the default is '
                                    f'{VOCABULARY_FILE}') from err
        except json.JSONDecodeError as err:
            raise ValueError(f'vocabulary file {path} is not valid JSON ({err})') from err
        missing = {'classes', 'colours', 'sizes', 'positions', 'counts', 'single_item_phrasings',
                   'scene_phrasings', 'zero_shot_templates', 'colour_templates'} - set(data)
        if missing:
            raise ValueError(f'vocabulary file {path} lacks the keys {sorted(missing)}')
        self.path = path
        self.data = data
        self.class_names: list[str] = list(data['classes'])
        self.nouns: list[list[tuple[str, str]]] = [
            [tuple(pair) for pair in data['classes'][name]] for name in self.class_names]
        self.colour_names: list[str] = list(data['colours'])
        self.colour_anchors = np.array([data['colours'][c] for c in self.colour_names])
        self.colour_jitter = float(data.get('colour_jitter', 0.0))
        self.sizes: dict[str, tuple[float, float]] = {k: tuple(v) for k, v in data['sizes'].items()}
        self.rows = data['positions']['rows']
        self.columns = data['positions']['columns']
        self.position_phrases: dict[str, str] = data['positions']['phrases']
        self.counts: list[str] = data['counts']
        self.zero_shot_templates: list[str] = data['zero_shot_templates']
        self.colour_templates: list[str] = data['colour_templates']

    # ------------------------------------------------------------ attributes
    def colour_of(self, tint) -> str:
        """The colour word of a tint: its nearest anchor (tints are scaled to max channel 1)."""
        tint = np.asarray(tint, dtype=float)
        tint = tint / max(tint.max(), 1e-6)
        return self.colour_names[int(np.argmin(((self.colour_anchors - tint) ** 2).sum(1)))]

    def sample_tint(self, rng: np.random.Generator, colour: str | None = None) -> np.ndarray:
        """A tint whose colour word is ``colour`` (random if None): the anchor plus jitter,
        resampled until the nearest anchor is still the named one."""
        index = (int(rng.integers(len(self.colour_names))) if colour is None
                 else self.colour_names.index(colour))
        anchor = self.colour_anchors[index]
        while True:
            tint = np.clip(anchor + rng.normal(0, self.colour_jitter, 3), 0.3, 1.0)
            tint = tint / tint.max()
            if self.colour_of(tint) == self.colour_names[index]:
                return tint

    def size_of(self, box, image_side: float) -> str:
        """small / medium / large from the longer side of the box over the image side."""
        fraction = max(box[2], box[3]) / image_side
        for word, (low, high) in self.sizes.items():
            if low <= fraction < high:
                return word
        raise ValueError(f'box {box} does not fit the size bins {self.sizes} of {self.path}')

    def position_of(self, box, image_side: float) -> str:
        """'top left' ... 'bottom right' (a 3 x 3 grid) from the box centre."""
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        column = self.columns[min(int(3 * cx / image_side), 2)]
        row = self.rows[min(int(3 * cy / image_side), 2)]
        return f'{row} {column}'

    def attributes(self, obj: SceneObject, image_side: float) -> dict:
        """The words that describe one item: class name, colour, size and position."""
        return {'class': self.class_names[obj.label], 'colour': self.colour_of(obj.tint),
                'size': self.size_of(obj.box, image_side),
                'position': self.position_of(obj.box, image_side)}

    # -------------------------------------------------------------- captions
    def noun(self, label: int, rng: np.random.Generator, plural: bool = False) -> str:
        """A random name of the class (its own name or a synonym), lower case."""
        pairs = self.nouns[label]
        return pairs[int(rng.integers(len(pairs)))][int(plural)].lower()

    def describe(self, objects: list[SceneObject], image_side: float,
                 rng: np.random.Generator, colour: bool | None = None) -> str:
        """One caption of an image holding ``objects`` (a random phrasing). ``colour``: True
        names the colours, False leaves them out (as many real captions miss an attribute),
        None decides at random (single items: by the phrasing; scenes: 70% with colours)."""
        if not objects:
            raise ValueError('cannot describe an image without items')
        if len(objects) == 1:
            words = self.attributes(objects[0], image_side)
            phrasings = [p for p in self.data['single_item_phrasings']
                         if colour is None or ('{colour}' in p) == colour]
            phrasing = phrasings[int(rng.integers(len(phrasings)))]
            return _articles(phrasing.format(
                noun=self.noun(objects[0].label, rng), colour=words['colour'],
                size=words['size'], position=self.position_phrases[words['position']]))
        groups: dict[tuple[int, str], list[SceneObject]] = {}
        for obj in objects:
            groups.setdefault((obj.label, self.colour_of(obj.tint)), []).append(obj)
        with_colour = rng.random() < 0.7 if colour is None else colour
        parts = []
        for (label, colour), members in groups.items():
            colour_word = f'{colour} ' if with_colour else ''
            if len(members) > 1:
                parts.append(f'{self.counts[len(members)]} {colour_word}'
                             f'{self.noun(label, rng, plural=True)}')
                continue
            part = f'a {colour_word}{self.noun(label, rng)}'
            if rng.random() < 0.3:
                where = self.position_of(members[0].box, image_side)
                part += ' ' + self.position_phrases[where]
            parts.append(part)
        order = rng.permutation(len(parts))
        parts = [parts[i] for i in order]
        items = parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]
        phrasings = self.data['scene_phrasings']
        phrasing = phrasings[int(rng.integers(len(phrasings)))]
        count = self.counts[min(len(objects), len(self.counts) - 1)]
        return _articles(phrasing.format(items=items, count=count))

    def class_prompts(self, template: str) -> list[str]:
        """``template`` filled with every class name (zero-shot classifier prompts)."""
        return [_articles(template.format(name)) for name in self.class_names]

    def colour_prompts(self, colour: str) -> list[str]:
        """Every colour template filled with ``colour`` and every class name (``{noun}``)."""
        prompts = []
        for template in self.colour_templates:
            if '{noun}' in template:
                prompts += [_articles(template.format(colour=colour, noun=name.lower()))
                            for name in self.class_names]
            else:
                prompts.append(_articles(template.format(colour=colour)))
        return prompts


def captioned_scene(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray, size: int,
                    vocab: FashionVocabulary, single_prob: float = 0.5,
                    max_items: int = 4) -> tuple[np.ndarray, list[SceneObject]]:
    """An image for caption pretraining: one item at a random scale (``single_prob``) or a small
    Fashion Scenes canvas of 2 to ``max_items`` items, tinted with the vocabulary's colours.

    Args:
        items: (N, 28, 28) uint8 pool; labels: (N,) class indices; size: the image side.

    Returns:
        image (size, size, 3) uint8 and its items (class, tint, visible box).
    """
    from .fashion_scenes import SceneConfig, compose_canvas, item_on_background
    tint = vocab.sample_tint
    if rng.random() < single_prob:
        index = int(rng.integers(len(items)))
        image, box, colour = item_on_background(rng, items[index], size, min_side=size // 4,
                                                max_side=size, tint=tint)
        return image, [SceneObject(int(labels[index]), tuple(colour), tuple(box))]
    cfg = SceneConfig(canvas_size=size, min_items=2, max_items=max_items,
                      min_item_size=size // 4, max_item_size=size // 2)
    image, instance, objects = compose_canvas(rng, items, labels, cfg, tint=tint)
    found = []
    for i, obj in enumerate(objects):
        ys, xs = np.nonzero(instance == i + 1)
        box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
               int(ys.max() - ys.min() + 1))
        found.append(SceneObject(obj['label'], tuple(obj['tint']), box))
    return image, found


def objects_of_annotations(annotations: list[dict]) -> list[SceneObject]:
    """Fashion Scenes COCO annotations of one canvas (format 2, with ``tint``) -> items."""
    if annotations and 'tint' not in annotations[0]:
        raise KeyError('these Fashion Scenes annotations have no item tints (format 1); '
                       'regenerate them with `python tools/data/make_fashion_scenes.py` '
                       '(the images stay the same)')
    return [SceneObject(a['category_id'] - 1, tuple(a['tint']), tuple(a['bbox']))
            for a in annotations]
