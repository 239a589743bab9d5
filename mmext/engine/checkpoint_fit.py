"""Refuse a checkpoint that does not fit the model (another architecture), before any weight
is copied, instead of mmengine's warning after a partial load."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS


def checkpoint_misfit(model_state: dict, checkpoint_state: dict) -> str | None:
    """Why ``checkpoint_state`` cannot load into a model with ``model_state``, or None: tensors
    whose shapes differ under the same name, or no name in common at all. Names only one side
    has are allowed (a float checkpoint into a quantized model lacks the quantizers' state)."""
    if not checkpoint_state:
        return None
    common = [k for k in checkpoint_state if k in model_state]
    if not common:
        return (f'no parameter name in common (the checkpoint has e.g. '
                f'{sorted(checkpoint_state)[:3]}, the model {sorted(model_state)[:3]})')
    shapes = [(k, tuple(checkpoint_state[k].shape), tuple(model_state[k].shape)) for k in common
              if hasattr(checkpoint_state[k], 'shape') and hasattr(model_state[k], 'shape')
              and tuple(checkpoint_state[k].shape) != tuple(model_state[k].shape)]
    if shapes:
        listed = '; '.join(f'{k}: {a} in the checkpoint, {b} in the model' for k, a, b in shapes[:3])
        return f'{len(shapes)} tensors differ in shape ({listed})'
    return None


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """After a checkpoint is read for ``load_from`` or ``--resume`` and before it is copied into
    the model: stop with a message if it belongs to another architecture. ``tools/train.py``
    and ``tools/test.py`` add it to every run."""

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', checkpoint)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        problem = checkpoint_misfit(model.state_dict(), state)
        if problem:
            raise ValueError(f'the checkpoint does not fit the model this config builds: '
                             f'{problem}. Use the config it was trained with, or convert it '
                             '(tools/model_converters/)')
