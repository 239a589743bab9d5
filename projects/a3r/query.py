"""A3R's query processing (methods spec, section 5.3): routing a caption to a domain by the
attribute words it contains, removing its leading article and adding that domain's suffix.

In the challenge, a caption with a vehicle colour, type or brand word goes to the vehicle
pipeline and gets "... taken by a traffic surveillance camera."; other captions are person
queries and stay as they are. The words and suffixes come from the config (an attribute
vocabulary), not from code.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from mmcv.transforms import BaseTransform

from mmext.registry import TRANSFORMS

ARTICLES = ('a', 'an', 'the')


def route_query(text: str, routes: Mapping[str, Sequence[str]], default: str) -> str:
    """The first route (in order) one of whose words occurs in ``text`` as a whole word
    (case-insensitive), else ``default``."""
    words = set(re.findall(r"[\w'-]+", text.lower()))
    for name, vocabulary in routes.items():
        for phrase in vocabulary:
            parts = phrase.lower().split()
            if len(parts) == 1 and parts[0] in words:
                return name
            if len(parts) > 1 and re.search(r'\b' + re.escape(phrase.lower()) + r'\b',
                                            text.lower()):
                return name
    return default


def strip_leading_article(text: str) -> str:
    """'A white Audi.' -> 'White Audi.' (only a leading 'a', 'an' or 'the')."""
    stripped = text.lstrip()
    head, _, rest = stripped.partition(' ')
    if head.lower() in ARTICLES and rest:
        return rest[:1].upper() + rest[1:]
    return stripped


def _route_words(vocabulary_cls, words) -> list[str]:
    if isinstance(words, str):  # an attribute vocabulary file
        vocabulary = vocabulary_cls.from_json(words)
        return [v for slot in vocabulary.route_slots for v in vocabulary.slots[slot].values]
    return list(words)


@TRANSFORMS.register_module()
class QuerySuffix(BaseTransform):
    """Route ``results['text']`` and rewrite it for its domain; the route goes to
    ``results['route']``.

    Args:
        routes: ``{route name: [attribute words or phrases]}``, tried in order, or
            ``{route name: path}``: an attribute vocabulary JSON (``projects/a3r/attributes.py``)
            whose ``route_slots`` values are the route's words (the file the augmentation tool
            reads).
        suffixes: ``{route name: suffix}``; a route without one keeps its text.
        default: the route of a text without any listed word (e.g. 'person').
        strip_articles: routes whose leading article is removed (default: those with a suffix).
    """

    def __init__(self, routes: Mapping[str, Sequence[str] | str], suffixes: Mapping[str, str],
                 default: str, strip_articles: Sequence[str] | None = None):
        from .attributes import AttributeVocabulary
        routes = {name: _route_words(AttributeVocabulary, words) for name, words in routes.items()}
        unknown = set(suffixes) - set(routes) - {default}
        if unknown:
            raise ValueError(f'suffixes name routes that do not exist: {sorted(unknown)}; '
                             f'routes: {sorted(routes)} and the default {default!r}')
        self.routes, self.suffixes, self.default = dict(routes), dict(suffixes), default
        self.strip_articles = set(suffixes if strip_articles is None else strip_articles)

    def rewrite(self, text: str) -> tuple[str, str]:
        """One caption -> (the rewritten caption, its route)."""
        route = route_query(text, self.routes, self.default)
        if route in self.strip_articles:
            text = strip_leading_article(text)
        suffix = self.suffixes.get(route)
        if suffix:
            text = text.rstrip()
            text = f'{text} {suffix}' if text.endswith(('.', '!', '?')) else f'{text}. {suffix}'
        return text, route

    def transform(self, results: dict) -> dict:
        """``results['text']``: a caption (training) or a list of captions (an evaluation
        item); ``results['route']`` gets the route, or the list of routes."""
        text = results.get('text')
        if isinstance(text, str):
            results['text'], results['route'] = self.rewrite(text)
        elif isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            pairs = [self.rewrite(t) for t in text]
            results['text'] = [t for t, _ in pairs]
            results['route'] = [r for _, r in pairs]
        else:
            raise KeyError(f"QuerySuffix needs results['text'] (a caption or a list of them), "
                           f'got {text!r}')
        return results
