"""Save the random number generators' states in every checkpoint and restore them when a run
resumes, so that a resumed run draws the same augmentations and dropout masks as the run it
continues (mmengine restores the model, optimizer, schedulers and the data position, not these)."""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmext.registry import HOOKS

KEY = 'mmext_rng_state'


def rng_state() -> dict:
    """The states of Python's, NumPy's and torch's global generators (and CUDA's, if any)."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Writes :func:`rng_state` into each checkpoint (under ``mmext_rng_state``); a resumed run
    sets it back where the uninterrupted run stood when it saved: an epoch-based run before its
    next epoch creates its data iterator (which draws a seed from torch's generator), an
    iteration-based run before its next iteration, after mmengine has advanced the data loader
    past the batches already trained. A run that only loads weights (``load_from``) starts at
    iteration 0 and is left alone.

    Exact for data loading in the main process (``num_workers=0``); worker processes draw
    their seeds when the loader's iterator is created, which a resumed run does at another
    moment. ``tools/train.py`` adds this hook to every run.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._pending: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[KEY] = rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get(KEY)

    def before_train_epoch(self, runner) -> None:
        from mmengine.runner import EpochBasedTrainLoop
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            self._restore(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._restore(runner)

    def _restore(self, runner) -> None:
        if self._pending is not None:
            if runner.iter > 0:            # resumed, not a fresh run from load_from
                set_rng_state(self._pending)
            self._pending = None
