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
    sets it back where the uninterrupted run stood when it saved, i.e. before it loads its next
    batch: an epoch-based run before its next epoch creates its data iterator (which draws a
    seed from torch's generator); an iteration-based run after mmengine has advanced the data
    iterator past the batches already trained and before it loads the next one (the loop's
    ``dataloader_iterator`` is wrapped for that one call; ``before_train_iter`` would come after
    the batch is loaded). A run that only loads weights (``load_from``) starts at iteration 0
    and is left alone.

    Validation leaves the generators as it found them: it runs after the checkpoint is saved
    and draws from torch's generator (its data iterator's seed), which a run resumed from that
    checkpoint would not. The restore comes before other hooks' ``before_train_epoch``
    (priority ``HIGHEST``), so their draws are replayed too.

    Exact for data loading in the main process (``num_workers=0``); worker processes draw
    their seeds when the loader's iterator is created, which a resumed run does at another
    moment. ``tools/train.py`` adds this hook to every run.
    """

    priority = 'HIGHEST'

    def __init__(self):
        self._pending: dict | None = None
        self._before_val: dict | None = None

    def before_val(self, runner) -> None:
        self._before_val = rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_rng_state(self._before_val)
            self._before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[KEY] = rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get(KEY)

    def before_train_epoch(self, runner) -> None:
        from mmengine.runner import EpochBasedTrainLoop
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            self._restore(runner)
        elif self._pending is not None and runner.iter > 0 and \
                hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = _RestoreBeforeBatch(loop.dataloader_iterator,
                                                           runner.iter, self._pending)
            self._pending = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._restore(runner)

    def _restore(self, runner) -> None:
        if self._pending is not None:
            if runner.iter > 0:            # resumed, not a fresh run from load_from
                set_rng_state(self._pending)
            self._pending = None


class _RestoreBeforeBatch:
    """A data iterator that passes ``skip`` batches through (mmengine's advance past the
    trained ones), then sets the generators to ``state`` just before loading the next."""

    def __init__(self, iterator, skip: int, state: dict):
        self._iterator, self._skip, self._state = iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
        elif self._state is not None:
            set_rng_state(self._state)
            self._state = None
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)
