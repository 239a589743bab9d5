"""Stop a run at the first non-finite loss or degenerate quantizer step, naming both."""
from __future__ import annotations

import math

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmext.registry import HOOKS

STEP_FIX = ('lower the learning rate of the quantizer steps (e.g. paramwise_cfg custom_keys '
            "{'.scale': dict(lr_mult=0.1)}) or clip gradients (optim_wrapper.clip_grad), then "
            'resume from the last checkpoint')
LOSS_FIX = ('lower the learning rate or clip gradients (optim_wrapper.clip_grad), check the '
            'batch for broken images or boxes, then resume from the last checkpoint')


def quantizer_steps(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The learnable steps and scales of every quantizer and binarizer, by module name: LSQ and
    LSQ+ steps, the learnable-scale binarizers' scales (each must stay positive and finite)."""
    from mmext.quant.quantizers import LearnableScaleBinarizer, WeightBinarizer, _StepQuantizer
    steps = {}
    for name, module in model.named_modules():
        if isinstance(module, _StepQuantizer) and getattr(module, 'enabled', True):
            steps[name] = module.scale
        elif isinstance(module, LearnableScaleBinarizer) or (
                isinstance(module, WeightBinarizer) and module.learnable_scale):
            steps[name] = module.scale
    return steps


@HOOKS.register_module()
class NumericalGuardHook(Hook):
    """After every ``interval``-th training iteration: every logged loss must be finite and
    every quantizer step (:func:`quantizer_steps`) finite and positive, or the run stops with
    a ``FloatingPointError`` that names the iteration, the loss or module, the value and what
    to do. It runs before the checkpoint hook, so the broken state is not saved.

    ``custom_hooks = [dict(type='mmext.NumericalGuardHook')]``; the quantized demo configs list
    it. A step check costs one reduction over all steps (a few hundred small tensors).
    """

    priority = 'ABOVE_NORMAL'   # before CheckpointHook (VERY_LOW) and the logger

    def __init__(self, interval: int = 1, check_steps: bool = True):
        if interval < 1:
            raise ValueError(f'interval must be at least 1, got {interval}')
        self.interval, self.check_steps = interval, check_steps

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        iteration = runner.iter + 1
        for key, value in (outputs or {}).items():
            number = float(value.detach().float().mean()) if torch.is_tensor(value) else value
            if isinstance(number, float) and not math.isfinite(number):
                raise FloatingPointError(f'iteration {iteration}: {key} is {number}; {LOSS_FIX}')
        if self.check_steps:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            self.check_quantizer_steps(model, iteration)

    @staticmethod
    def check_quantizer_steps(model: torch.nn.Module, iteration: int) -> None:
        steps = quantizer_steps(model)
        if not steps:
            return
        with torch.no_grad():
            flat = torch.cat([s.detach().reshape(-1) for s in steps.values()])
            if bool(torch.isfinite(flat).all()) and bool((flat > 0).all()):
                return
            for name, step in steps.items():
                bad = ~torch.isfinite(step) | (step <= 0)
                if bool(bad.any()):
                    index = int(bad.reshape(-1).nonzero()[0])
                    value = float(step.reshape(-1)[index])
                    raise FloatingPointError(
                        f'iteration {iteration}: the step of {name} (element {index} of '
                        f'{step.numel()}) is {value}; a quantizer step must stay positive and '
                        f'finite: {STEP_FIX}')
