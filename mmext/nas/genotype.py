"""Genotypes: the discrete cells a search ends with, in DARTS's notation.

A genotype is written as DARTS writes it::

    Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=[2, 3, 4, 5])

Each cell has ``steps`` intermediate nodes; node ``i`` (counting the two cell inputs as 0 and
1, so intermediate nodes are 2 .. steps + 1) takes two ``(operation, input node)`` pairs whose
input is an earlier node. ``parse_genotype`` reads that string (``range(2, 6)`` is accepted
for the concat lists) and says exactly what is wrong with a malformed one.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import NamedTuple

import torch

from .operations import PRIMITIVES


class Genotype(NamedTuple):
    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    def __str__(self) -> str:
        return (f'Genotype(normal={self.normal}, normal_concat={self.normal_concat}, '
                f'reduce={self.reduce}, reduce_concat={self.reduce_concat})')


class GenotypeError(ValueError):
    """A genotype string or object is malformed; the message names the fault."""


_EXAMPLE = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ...], "
            "normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])")


def _check_cell(kind: str, edges, concat) -> tuple[list[tuple[str, int]], list[int]]:
    if not isinstance(edges, (list, tuple)) or not edges or len(edges) % 2:
        raise GenotypeError(f'{kind} must be a non-empty list of (operation, input) pairs, two '
                            f'per node; got {edges!r}')
    steps = len(edges) // 2
    checked = []
    for i, edge in enumerate(edges):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2
                and isinstance(edge[0], str) and isinstance(edge[1], int)):
            raise GenotypeError(f'{kind}[{i}] must be an (operation, input node) pair, got '
                                f'{edge!r}')
        op, source = edge
        if op not in PRIMITIVES or op == 'none':
            raise GenotypeError(f"{kind}[{i}]: unknown operation {op!r}; choose one of "
                                f"{PRIMITIVES[1:]}")
        node = 2 + i // 2
        if not 0 <= source < node:
            raise GenotypeError(f'{kind}[{i}]: node {node} can take inputs 0..{node - 1}, got '
                                f'{source}')
        checked.append((op, source))
    concat = list(concat)
    if not concat or any(not isinstance(c, int) or not 0 <= c < steps + 2 for c in concat):
        raise GenotypeError(f'{kind}_concat must list nodes in 0..{steps + 1}, got {concat!r}')
    return checked, concat


def check_genotype(genotype: Genotype) -> Genotype:
    """Validate a genotype (operations, input nodes, concat lists, same steps in both cells)."""
    normal, normal_concat = _check_cell('normal', genotype.normal, genotype.normal_concat)
    reduce, reduce_concat = _check_cell('reduce', genotype.reduce, genotype.reduce_concat)
    if len(normal) != len(reduce):
        raise GenotypeError(f'the normal cell has {len(normal) // 2} nodes, the reduction cell '
                            f'{len(reduce) // 2}; they must match')
    return Genotype(normal, normal_concat, reduce, reduce_concat)


def parse_genotype(text: str | Genotype) -> Genotype:
    """A :class:`Genotype` from its DARTS string (or a Genotype, checked).

    Raises GenotypeError naming the problem and showing the expected form.
    """
    if isinstance(text, Genotype):
        return check_genotype(text)
    if not isinstance(text, str):
        raise GenotypeError(f'a genotype must be a string like {_EXAMPLE}, got '
                            f'{type(text).__name__}')
    source = re.sub(r'range\(\s*(\d+)\s*,\s*(\d+)\s*\)',
                    lambda m: str(list(range(int(m[1]), int(m[2])))), text.strip())
    try:
        tree = ast.parse(source, mode='eval').body
    except SyntaxError as e:
        raise GenotypeError(f'cannot parse genotype {text!r} ({e.msg}); expected {_EXAMPLE}') \
            from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and tree.func.id == 'Genotype' and not tree.args):
        raise GenotypeError(f'a genotype string must be Genotype(normal=..., normal_concat=..., '
                            f'reduce=..., reduce_concat=...), got {text!r}')
    fields = {}
    for keyword in tree.keywords:
        try:
            fields[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise GenotypeError(f'genotype field {keyword.arg!r} must be a literal list, got '
                                f'{ast.unparse(keyword.value)!r}') from None
    missing = set(Genotype._fields) - set(fields)
    unknown = set(fields) - set(Genotype._fields)
    if missing or unknown:
        raise GenotypeError(f'genotype fields: missing {sorted(missing)}, unknown '
                            f'{sorted(unknown)}; expected {Genotype._fields}')
    return check_genotype(Genotype(**fields))


def derive_genotype(weights_normal: torch.Tensor, weights_reduce: torch.Tensor,
                    steps: int = 4, primitives: tuple[str, ...] = PRIMITIVES) -> Genotype:
    """The DARTS discretisation: each node keeps its two incoming edges whose strongest
    operation other than 'none' is strongest, with that operation.

    Args:
        weights_normal / weights_reduce: (E, M) operation weights (softmax of alpha), E =
            sum over nodes of their inputs (14 for 4 steps), M = len(primitives).
    """
    def cell(weights: torch.Tensor) -> list[tuple[str, int]]:
        weights = weights.detach().cpu()
        none = primitives.index('none') if 'none' in primitives else None
        chosen, start = [], 0
        for node in range(steps):
            inputs = node + 2
            rows = weights[start:start + inputs].clone()
            if none is not None:
                rows[:, none] = -1.0
            best = rows.max(dim=1)
            keep = sorted(best.values.argsort(descending=True)[:2].tolist())
            chosen += [(primitives[int(best.indices[j])], j) for j in keep]
            start += inputs
        return chosen

    concat = list(range(2, steps + 2))
    return Genotype(cell(weights_normal), concat, cell(weights_reduce), concat)


def random_genotype(steps: int = 4, generator: torch.Generator | None = None) -> Genotype:
    """A genotype drawn uniformly: two distinct inputs per node, operations other than 'none'."""
    ops = PRIMITIVES[1:]

    def cell():
        chosen = []
        for node in range(steps):
            inputs = torch.randperm(node + 2, generator=generator)[:2].sort().values.tolist()
            chosen += [(ops[int(torch.randint(len(ops), (1,), generator=generator))], j)
                       for j in inputs]
        return chosen

    concat = list(range(2, steps + 2))
    return Genotype(cell(), concat, cell(), concat)


def load_genotype(spec: str | Genotype) -> Genotype:
    """A genotype from a DARTS string, a :class:`Genotype`, or a file: a config fragment
    ``*.py`` defining ``genotype = "Genotype(...)"`` (what :class:`DumpGenotypeHook` writes) or a
    ``*.txt`` holding the string.

    Raises GenotypeError for a missing file or a malformed genotype.
    """
    if isinstance(spec, str) and spec.strip().endswith(('.py', '.txt')):
        path = Path(spec.strip())
        if not path.is_file():
            raise GenotypeError(f'genotype file {path} does not exist; give a DARTS genotype '
                                f'string or the genotype.py a search wrote in its work_dir')
        if path.suffix == '.txt':
            return parse_genotype(path.read_text())
        from mmengine.config import Config
        cfg = Config.fromfile(str(path))
        if 'genotype' not in cfg:
            raise GenotypeError(f'{path} defines no `genotype = "Genotype(...)"`')
        return parse_genotype(cfg.genotype)
    return parse_genotype(spec)


def genotype_fragment(genotype: Genotype, comment: str = '') -> str:
    """A config fragment defining ``genotype``, to pass as ``model.backbone.genotype=<file>``."""
    lines = [f'# {line}' for line in comment.splitlines()]
    return '\n'.join(lines + [f'genotype = {str(check_genotype(genotype))!r}', ''])
