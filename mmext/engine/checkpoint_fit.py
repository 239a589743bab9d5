"""Refuse a checkpoint of another architecture before any weight is copied, instead of
mmengine's warning after a partial load; a fine-tuning checkpoint whose head alone differs
(another class count) still loads, with the skipped tensors named."""
from __future__ import annotations

import logging
import re
from collections import Counter

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS


def _prefix_candidates(keys: list[str], longer: list[str]) -> Counter:
    """Prefixes p with ``p + k`` in ``longer`` for k in ``keys`` (a sample), by frequency."""
    found = Counter()
    for k in keys:
        found.update({other[:-len(k)] for other in longer
                      if other.endswith('.' + k) or other == k})
    return found


def align_keys(checkpoint_state: dict, model_state: dict) -> dict:
    """``checkpoint_state`` with its names as the model will read them: DataParallel's
    ``module.`` dropped (as mmengine does), and where few names are shared, the one prefix
    that a wrapper adds or removes (e.g. a model that holds the checkpoint's classifier as
    ``classifier.`` and maps the names when loading)."""
    state = {re.sub(r'^module\.', '', k): v for k, v in checkpoint_state.items()}
    shared = sum(k in model_state for k in state)
    if shared >= len(state) / 2:
        return state
    sample = list(state)[:50]
    best, best_shared = state, shared
    for prefix, _ in _prefix_candidates(sample, list(model_state)).most_common(3):
        mapped = {prefix + k: v for k, v in state.items()}
        if sum(k in model_state for k in mapped) > best_shared:
            best, best_shared = mapped, sum(k in model_state for k in mapped)
    for prefix, _ in _prefix_candidates(list(model_state)[:50], sample).most_common(3):
        mapped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if prefix and sum(k in model_state for k in mapped) > best_shared:
            best, best_shared = mapped, sum(k in model_state for k in mapped)
    return best


def shape_mismatches(model_state: dict, checkpoint_state: dict) -> tuple[int, list[tuple]]:
    """-> (number of names in common, ``[(name, checkpoint shape, model shape)]`` for the common
    tensors whose shapes differ), after :func:`align_keys`."""
    state = align_keys(checkpoint_state, model_state)
    common = [k for k in state if k in model_state]
    differ = [(k, tuple(state[k].shape), tuple(model_state[k].shape)) for k in common
              if hasattr(state[k], 'shape') and hasattr(model_state[k], 'shape')
              and tuple(state[k].shape) != tuple(model_state[k].shape)]
    return len(common), differ


def checkpoint_misfit(model_state: dict, checkpoint_state: dict,
                      max_mismatch_fraction: float = 0.1) -> str | None:
    """Why ``checkpoint_state`` belongs to another architecture than a model with
    ``model_state``, or None: no name in common, or more than ``max_mismatch_fraction`` of the
    common tensors differ in shape. Names only one side has are allowed (a float checkpoint
    into a quantized model lacks the quantizers' state)."""
    if not checkpoint_state:
        return None
    common, differ = shape_mismatches(model_state, checkpoint_state)
    if not common:
        return (f'no parameter name in common (the checkpoint has e.g. '
                f'{sorted(checkpoint_state)[:3]}, the model {sorted(model_state)[:3]})')
    if len(differ) > max_mismatch_fraction * common:
        listed = '; '.join(f'{k}: {a} in the checkpoint, {b} in the model' for k, a, b in differ[:3])
        return f'{len(differ)} of {common} tensors differ in shape ({listed})'
    return None


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """After a checkpoint is read for ``load_from`` or ``--resume`` and before it is copied into
    the model: stop with a message if it belongs to another architecture (see
    :func:`checkpoint_misfit`). A few differing tensors, e.g. a classifier fine-tuned to
    another class count, are named in a warning and left to mmengine, which skips them.
    ``tools/train.py`` and ``tools/test.py`` add it to every run.

    Args:
        max_mismatch_fraction: the largest share of the common tensors that may differ in
            shape before the checkpoint counts as another architecture's.
    """

    priority = 'VERY_HIGH'

    def __init__(self, max_mismatch_fraction: float = 0.1):
        self.max_mismatch_fraction = max_mismatch_fraction

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', checkpoint)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model_state = model.state_dict()
        problem = checkpoint_misfit(model_state, state, self.max_mismatch_fraction)
        if problem:
            raise ValueError(f'the checkpoint does not fit the model this config builds: '
                             f'{problem}. Use the config it was trained with, or convert it '
                             '(tools/model_converters/)')
        _, differ = shape_mismatches(model_state, state)
        if differ:
            print_log(f'the checkpoint\'s {", ".join(k for k, _, _ in differ)} differ in shape '
                      'from the model and are not loaded (e.g. a head fine-tuned to another '
                      'class count)', logger='current', level=logging.WARNING)
