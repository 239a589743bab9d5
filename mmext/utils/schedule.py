"""``--cfg-options`` that shorten an iteration-based schedule from the command line.

A config's ``max_iters`` is a plain variable: ``--cfg-options max_iters=N`` changes nothing that
was computed from it. These options set every field that depends on it instead.
"""
from __future__ import annotations


def iter_schedule_options(iters: int, milestone: float = 0.75, validate: bool = True) -> list[str]:
    """Options for ``iters`` iterations of an ``IterBasedTrainLoop`` whose first param scheduler
    is a ``MultiStepLR`` with one milestone (at ``milestone`` x iters), one checkpoint at the end,
    and a validation at the end (``validate=True``) or none (evaluate with tools/test.py)."""
    if iters < 1 or not 0 < milestone <= 1:
        raise ValueError(f'iter_schedule_options needs iters >= 1 and 0 < milestone <= 1, got '
                         f'{iters} and {milestone}')
    options = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
               f'default_hooks.checkpoint.interval={iters}', f'param_scheduler.0.end={iters}',
               f'param_scheduler.0.milestones=[{max(1, int(iters * milestone))}]']
    if not validate:  # IterBasedTrainLoop validates at max_iters unless val_begin is later
        options.append(f'train_cfg.val_begin={iters + 1}')
    return options
