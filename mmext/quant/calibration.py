"""Calibration of a quantized model: set the LSQ / LSQ+ steps and zero points from data.

The papers' LSQ initialisation (``s0 = 2 mean|x| / sqrt(Qp)``) clips large values, so a float
model converted at 4 bits starts QAT far below its float accuracy, and at 8 bits it is not
the nearly lossless post-training quantization everyone expects. Calibration instead chooses
each quantizer's clipping range by a method of :mod:`mmext.quant.observers` ('minmax',
'percentile' or 'mse'): weights exactly from their values, activations from the inputs the
quantizers see over a few batches of training data, with every quantizer being calibrated
passing its input unchanged (the float model's activations; quantizers that already have a
step quantize as usual). Statistics are reduced over the processes of a distributed run, so
every process gets the same steps.

A quantizer takes part if its ``calibration`` is set (``ModuleSwap(calibration=dict(...))``)
and it has no step yet (a quantizer loaded from a calibrated or trained checkpoint keeps its
own). Entry points:

- :func:`calibrate_model` (``model``, an iterable of batches);
- :class:`QuantCalibrationHook`, which runs it in the stock runner before training, validation
  and testing (post-training quantization with ``tools/test.py CONFIG FLOAT_CKPT``);
- ``tools/deploy/calibrate.py CONFIG FLOAT_CKPT --out CALIBRATED_CKPT``.
"""
from __future__ import annotations

import copy
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from itertools import islice

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseModel, is_model_wrapper
from torch import nn

from mmext.registry import HOOKS

from .observers import ActivationObserver
from .quantizers import _StepQuantizer


def step_quantizers(model: nn.Module) -> dict[str, _StepQuantizer]:
    """The LSQ / LSQ+ quantizers of ``model`` below 32 bits, by module name."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, _StepQuantizer) and m.enabled}


def weight_owners(model: nn.Module) -> dict[int, nn.Module]:
    """``{id(quantizer): layer}`` for the weight quantizers (``w_quantizer``) of layers with a
    ``weight`` (QLinear, QConv2d and the projections of quantized attention)."""
    return {id(m.w_quantizer): m for m in model.modules()
            if isinstance(getattr(m, 'w_quantizer', None), _StepQuantizer)
            and isinstance(getattr(m, 'weight', None), torch.Tensor)}


def pending_calibration(model: nn.Module) -> dict[str, _StepQuantizer]:
    """Quantizers set to be calibrated that have no step yet."""
    return {name: q for name, q in step_quantizers(model).items()
            if q.calibration is not None and not q.initialized}


@contextmanager
def passthrough(model: nn.Module, observers: dict[str, Callable] | None = None,
                names: Iterable[str] | None = None):
    """Within the block the LSQ / LSQ+ quantizers of ``model`` named in ``names`` (default:
    all) pass their input unchanged, handing it to ``observers[name]`` if given (e.g. to count
    MACs, or to observe the float model's activations)."""
    quantizers = step_quantizers(model)
    if names is not None:
        names = set(names)
        quantizers = {n: q for n, q in quantizers.items() if n in names}
    observers = observers or {}
    try:
        for name, q in quantizers.items():
            q.observer = observers.get(name, _noop)
        yield quantizers
    finally:
        for q in quantizers.values():
            q.observer = None


def _noop(x: torch.Tensor) -> None:
    return None


FORWARD_MODES = ('tensor', 'loss')


def openmmlab_forward(mode: str = 'tensor') -> Callable[[nn.Module, object], None]:
    """``forward(model, batch)`` for calibration: an OpenMMLab model's data preprocessor, then
    the model in ``mode`` ('tensor': the inference path; 'loss': the training path, which also
    reaches heads used only in training, e.g. mmseg's auxiliary head, and needs the batch's
    annotations); any other module is called on the batch."""
    if mode not in FORWARD_MODES:
        raise ValueError(f'calibration forward mode must be one of {FORWARD_MODES}, got {mode!r}')

    def forward(model: nn.Module, batch) -> None:
        if not isinstance(model, BaseModel):
            model(batch)
            return
        data = model.data_preprocessor(batch, mode == 'loss')
        if isinstance(data, dict):
            model(**data, mode=mode)
        else:
            model(*data, mode=mode)
    return forward


@contextmanager
def _calibration_state(model: nn.Module, seed: int | None):
    """Within the block the model is in eval mode and, if ``seed`` is given, the random
    generators are seeded with it (the training pipeline's augmentations then draw the same
    numbers whenever calibration runs); afterwards every module's mode and Python's, numpy's and
    torch's random states are as they were."""
    modes = {m: m.training for m in model.modules()}
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        model.eval()
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % 2 ** 32)
            torch.manual_seed(seed)
        yield
    finally:
        for m, training in modes.items():
            m.training = training
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@torch.no_grad()
def calibrate_model(model: nn.Module, batches: Iterable, num_batches: int | None = None,
                    forward: Callable[[nn.Module, object], object] | None = None,
                    force: bool = False, seed: int | None = None) -> dict:
    """Calibrate the quantizers of ``model`` that are set to be calibrated and have no step yet
    (all of them with ``force``).

    Args:
        model: a quantized model (an OpenMMLab model or any module).
        batches: the training data: a dataloader or any iterable of batches (what the model's
            data preprocessor takes, or what the module is called on). Under DDP, this
            process's shard: each process observes ``num_batches`` of its own.
        num_batches: batches to observe (default: the largest ``batches`` among the
            quantizers' calibration specs). The first ones of ``batches`` are used.
        forward: ``forward(model, batch)`` runs one pass (default:
            ``openmmlab_forward('tensor')``, the inference path).
        force: recalibrate quantizers that already have a step.
        seed: seed the random generators while the batches are drawn and run (their states
            are restored afterwards in any case).

    Returns:
        A report: ``weights`` and ``activations`` calibrated (counts per method), ``batches``
        observed and ``seconds``.

    Raises:
        RuntimeError: a quantizer to be calibrated got no input in any process (the forward
            does not reach it); it names them. Nothing is changed then.
    """
    start = time.perf_counter()
    quantizers = {name: q for name, q in step_quantizers(model).items()
                  if q.calibration is not None and (force or not q.initialized)}
    owners = weight_owners(model)
    weights = {n: q for n, q in quantizers.items() if id(q) in owners}
    activations = {n: q for n, q in quantizers.items() if id(q) not in owners}
    report = dict(weights=dict(Counter(q.calibration.method for q in weights.values())),
                  activations=dict(Counter(q.calibration.method
                                           for q in activations.values())), batches=0)
    if activations:  # first, so that a failure leaves every step as it was
        wanted = num_batches or max(q.calibration.batches for q in activations.values())
        without_step = {n for n, q in step_quantizers(model).items()
                        if n in quantizers or not q.initialized}
        report['batches'] = _calibrate_activations(
            model, activations, without_step, batches, wanted,
            forward or openmmlab_forward('tensor'), seed)
    for q in weights.values():
        q.calibrate_weight(owners[id(q)].weight)
    report['seconds'] = round(time.perf_counter() - start, 2)
    return report


def _calibrate_activations(model: nn.Module, quantizers: dict[str, _StepQuantizer],
                           calibrating: set[str], batches: Iterable, wanted: int,
                           forward: Callable, seed: int | None) -> int:
    """Observe the inputs of ``quantizers`` over ``wanted`` batches and set their ranges. The
    quantizers without a step before this run (``calibrating``) pass their inputs unchanged;
    those that had one (a stage-1 backbone, say) quantize as in training. Every process takes
    part in the same reductions whatever its data reached, so none waits for another."""
    observers = {name: ActivationObserver(q.calibration, q.channel_dim, q.scale.numel(),
                                          q.qp - q.qn + 1, name, q.scale.device)
                 for name, q in quantizers.items()}
    with _calibration_state(model, seed), passthrough(model, observers, calibrating):
        kept = list(islice(iter(batches), wanted))
        if len(kept) < wanted:
            print_log(f'calibration: the data gave {len(kept)} batches, fewer than the '
                      f'{wanted} asked for; calibrating on those', logger='current', level=30)
        for batch in kept:  # pass 1: the range of every group
            forward(model, batch)
        for observer in observers.values():
            observer.sync_range()
        unseen = [name for name, o in observers.items() if not o.seen]
        if unseen:
            raise RuntimeError(
                f'calibration: {len(unseen)} quantizers got no input from {len(kept)} batches '
                f'(in any process): {", ".join(unseen[:8])}{", ..." if len(unseen) > 8 else ""}. '
                "The calibration forward does not reach them: keep them float (the swap's skip), "
                "or calibrate through the training path (QuantCalibrationHook(mode='loss'))")
        histogram = {n: o for n, o in observers.items() if o.needs_histogram}
        if histogram:  # pass 2: histograms over those ranges
            for observer in histogram.values():
                observer.pass_ = 'histogram'
            for batch in kept:
                forward(model, batch)
            for observer in histogram.values():
                observer.sync_histogram()
    for name, q in quantizers.items():
        q.set_range(*observers[name].range(q.params_for_range, q.qn, q.qp, q.asymmetric))
    return len(kept)


def format_report(report: dict) -> str:
    """One line: what was calibrated, how, on how many batches, in how long."""
    def counts(kind):
        methods = report[kind]
        return ', '.join(f'{n} by {m}' for m, n in methods.items()) or 'none'
    return (f"quantizer calibration: weights {counts('weights')}; activations "
            f"{counts('activations')} over {report['batches']} batches; "
            f"{report['seconds']:.1f} s")


@HOOKS.register_module()
class QuantCalibrationHook(Hook):
    """Calibrate a quantized model's steps in the stock runner, before training, validation and
    testing, when some quantizer set to be calibrated has no step yet (a model just converted
    from a float checkpoint). A run resumed from, or a test of, a calibrated or trained
    checkpoint calibrates nothing.

    The data are the first batches of the config's ``train_dataloader``, built anew with the
    runner's seed, which also seeds the augmentations while calibration runs: with a fixed
    ``randomness.seed``, training, a PTQ test and ``tools/deploy/calibrate.py`` calibrate on the
    same batches. Under DDP each process observes its own shard's first batches and the
    statistics are reduced over processes. The random states are left as they were.

        custom_hooks = [dict(type='mmext.QuantCalibrationHook')]

    Args:
        num_batches: batches to observe (default: each quantizer's ``calibration.batches``).
        dataloader: a dataloader config to calibrate on instead of ``train_dataloader``.
        mode: the model's forward mode: 'tensor' (the inference path, default) or 'loss' (the
            training path, for quantizers only it reaches, e.g. an auxiliary head).
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_batches: int | None = None, dataloader: dict | None = None,
                 mode: str = 'tensor'):
        if num_batches is not None and num_batches < 1:
            raise ValueError(f'QuantCalibrationHook num_batches must be >= 1, got {num_batches}')
        self.num_batches, self.dataloader = num_batches, dataloader
        self.forward = openmmlab_forward(mode)

    def before_train(self, runner) -> None:
        calibrate_in_runner(runner, self.num_batches, self.dataloader, self.forward)

    def before_val(self, runner) -> None:
        calibrate_in_runner(runner, self.num_batches, self.dataloader, self.forward)

    def before_test(self, runner) -> None:
        calibrate_in_runner(runner, self.num_batches, self.dataloader, self.forward)


def calibrate_in_runner(runner, num_batches: int | None = None,
                        dataloader: dict | None = None,
                        forward: Callable | None = None) -> dict | None:
    """Calibrate ``runner.model``'s pending quantizers on the first batches of ``dataloader``
    (default: the config's ``train_dataloader``), built and run with the runner's seed; log and
    return the report, or None if nothing was pending."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if not pending_calibration(model):
        return None
    loader_cfg = copy.deepcopy(dataloader or runner.cfg.get('train_dataloader'))
    if not loader_cfg:
        raise ValueError('calibration runs on the train_dataloader, which this config lacks; '
                         'give QuantCalibrationHook a dataloader=dict(...)')
    if isinstance(loader_cfg, dict):
        loader_cfg['persistent_workers'] = False
    loader = runner.build_dataloader(loader_cfg, seed=runner.seed)
    report = calibrate_model(model, loader, num_batches, forward, seed=runner.seed)
    runner.logger.info(format_report(report))
    return report


def absent_quantizer_state_hook(module: nn.Module, incompatible_keys) -> None:
    """``load_state_dict`` post hook of a quantized model: the state of its LSQ / LSQ+
    quantizers that a checkpoint lacks (a float checkpoint's) leaves the missing-key list and is
    summed up in one line that says how it will be set. Other missing keys stay listed. So a
    strict load accepts a checkpoint without quantizer state; the quantizers then have no step,
    and one set to be calibrated refuses to run until it gets one."""
    quantizers = step_quantizers(module)
    if not quantizers or not incompatible_keys.missing_keys:
        return
    own = {f'{name}.{key}': name for name, q in quantizers.items() for key in q.state_dict()}
    absent = set()
    for key in list(incompatible_keys.missing_keys):
        parts = key.split('.')
        match = next((own['.'.join(parts[i:])] for i in range(len(parts))
                      if '.'.join(parts[i:]) in own), None)
        if match is not None:
            incompatible_keys.missing_keys.remove(key)
            absent.add(match)
    if not absent:
        return
    how = Counter('calibration (' + quantizers[n].calibration.method + ')'
                  if quantizers[n].calibration is not None else 'LSQ initialisation'
                  for n in absent)
    print_log(f'the checkpoint has no quantizer state for {len(absent)} of {len(quantizers)} '
              'LSQ / LSQ+ quantizers (a float checkpoint); they will be set by '
              + ', '.join(f'{way}: {n}' for way, n in how.items())
              + ' before their first forward (calibration: mmext.QuantCalibrationHook or '
              'tools/deploy/calibrate.py; LSQ initialisation: the first forward passes)',
              logger='current')


def register_absent_state_report(model: nn.Module) -> None:
    """Install :func:`absent_quantizer_state_hook` on ``model`` (installing it twice prints the
    line once: the first call takes the keys out of the list)."""
    model.register_load_state_dict_post_hook(absent_quantizer_state_hook)
