"""A3R's attribute augmentation (methods spec, section 5.1): complete the attribute words a
training caption misses with the zero-shot judgement of the CLIP being fine-tuned.

An attribute vocabulary (JSON) names the slots:

    {"slots": {
        "colour": {"values": ["white", "red", ...], "fill": true, "insert_before": ["type"]},
        "type":   {"values": ["sedan", "suv", ...], "fill": true, "insert_before": []},
        "brand":  {"values": ["audi", ...],          "fill": false}},
     "route_slots": ["colour", "type", "brand"]}

A caption with no word of the ``route_slots`` is of another domain (a person in the challenge)
and stays as it is. For the others, every missing slot with ``fill`` is completed: each
combination of values of the missing slots is written into the caption (a value goes before
the first word found of its ``insert_before`` slots), scored by ``cos(f_img(image),
f_txt(caption))``, and the best kept. A slot with ``"fill": false`` (brands: too fine-grained
to judge zero-shot) is never filled; a missing fillable slot with no anchor word in the caption
cannot be placed, and the caption stays as it is (the report counts it).
"""
from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmext.datasets import CorruptDataError, DataNotFoundError

from .dataset import AnnotationLine


@dataclass
class Slot:
    values: list[str]
    fill: bool = False
    insert_before: list[str] = field(default_factory=list)


@dataclass
class AttributeVocabulary:
    slots: dict[str, Slot]
    route_slots: list[str]

    @classmethod
    def from_json(cls, path: str | Path) -> AttributeVocabulary:
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f'attribute vocabulary {path} does not exist')
        try:
            data = json.loads(path.read_text())
            slots = {name: Slot(list(cfg['values']), bool(cfg.get('fill', False)),
                                list(cfg.get('insert_before', [])))
                     for name, cfg in data['slots'].items()}
        except json.JSONDecodeError as e:
            raise CorruptDataError(f'attribute vocabulary {path} is not valid JSON: {e}') from e
        except (KeyError, TypeError, AttributeError) as e:
            raise CorruptDataError(
                f'attribute vocabulary {path} does not follow the schema {{"slots": {{name: '
                f'{{"values": [...], "fill": bool, "insert_before": [slot names]}}}}, '
                f'"route_slots": [...]}} ({type(e).__name__}: {e})') from e
        route = list(data.get('route_slots', list(slots)))
        unknown = {s for slot in slots.values() for s in slot.insert_before} | set(route)
        unknown -= set(slots)
        if unknown:
            raise CorruptDataError(f'attribute vocabulary {path} names unknown slots '
                                   f'{sorted(unknown)}; its slots: {sorted(slots)}')
        return cls(slots, route)


def _find(caption: str, values: Sequence[str]) -> tuple[str, int] | None:
    """The first value of ``values`` found as whole words in ``caption`` and its position."""
    best = None
    for value in values:
        match = re.search(r'(?<![\w-])' + re.escape(value.lower()) + r'(?![\w-])',
                          caption.lower())
        if match and (best is None or match.start() < best[1]):
            best = (value, match.start())
    return best


def _with_article(before: str, word: str) -> str:
    """``before`` with a trailing 'a' / 'an' made to agree with ``word`` ('An Audi' ->
    'A white Audi')."""
    match = re.search(r'(?<![\w-])(a|an|A|An) $', before)
    if match is None:
        return before
    article = 'an' if word[:1].lower() in 'aeiou' else 'a'
    if match.group(1)[0].isupper():
        article = article.capitalize()
    return before[:match.start(1)] + article + ' '


def find_slots(caption: str, vocabulary: AttributeVocabulary) -> dict[str, tuple[str, int]]:
    """``{slot: (value, character position)}`` of the slots the caption names."""
    found = {}
    for name, slot in vocabulary.slots.items():
        hit = _find(caption, slot.values)
        if hit is not None:
            found[name] = hit
    return found


def completions(caption: str, vocabulary: AttributeVocabulary
                ) -> tuple[list[str], list[str], str]:
    """The candidate captions for the missing fillable slots.

    Returns ``(candidates, filled slot names, status)``; status is 'complete' (nothing to
    fill), 'other domain' (no routing word), 'no anchor' (a missing slot cannot be placed) or
    'candidates'."""
    found = find_slots(caption, vocabulary)
    if not any(name in found for name in vocabulary.route_slots):
        return [], [], 'other domain'
    missing = [n for n, s in vocabulary.slots.items() if s.fill and n not in found]
    if not missing:
        return [], [], 'complete'
    anchors = {}
    for name in missing:
        places = [found[a][1] for a in vocabulary.slots[name].insert_before if a in found]
        if not places:
            return [], missing, 'no anchor'
        anchors[name] = min(places)
    candidates = []
    for values in itertools.product(*(vocabulary.slots[n].values for n in missing)):
        text = caption
        # insert from the right so that earlier positions stay valid
        for name, value in sorted(zip(missing, values), key=lambda p: -anchors[p[0]]):
            at = anchors[name]
            text = _with_article(text[:at], value) + value + ' ' + text[at:]
        candidates.append(text)
    return candidates, missing, 'candidates'


def augment_annotations(lines: list[AnnotationLine], vocabulary: AttributeVocabulary,
                        score: Callable[[str, list[str]], Sequence[float]],
                        image_path: Callable[[str], str]) -> tuple[list[AnnotationLine], dict]:
    """Complete every caption that misses a fillable attribute.

    ``score(image file, captions)`` gives the zero-shot similarity of each candidate;
    ``image_path(name)`` locates an annotation's image. Returns the new lines and a report
    (captions per status, completions per slot)."""
    report = Counter()
    filled = Counter()
    out = []
    for line in lines:
        candidates, missing, status = completions(line.caption, vocabulary)
        report[status] += 1
        if status != 'candidates':
            out.append(line)
            continue
        scores = list(score(image_path(line.image), candidates))
        best = max(range(len(candidates)), key=scores.__getitem__)
        out.append(AnnotationLine(line.image, line.attributes, candidates[best]))
        filled.update(missing)
    return out, dict(captions=len(lines), completed=report['candidates'],
                     already_complete=report['complete'], other_domain=report['other domain'],
                     no_anchor=report['no anchor'], filled_per_slot=dict(filled),
                     never_filled=[n for n, s in vocabulary.slots.items() if not s.fill])
