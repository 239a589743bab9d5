"""Training-step cost of fake quantization, relative to the same float model, in one run.

    python benchmarks/quant_overhead.py                 # CPU, writes
                                                        # benchmarks/results/quant_overhead.json
    python benchmarks/quant_overhead.py --device cuda --out benchmarks/results/quant_overhead_gpu.json

A training step is ``zero_grad``, forward with loss, backward and an AdamW step. Models:

- ``detr``: the demo detector (Conditional DETR, MobileNetV2 stride 16, 3+3 layers, 25 queries,
  ``configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py``) on a batch of
  random 128 x 128 canvases with 3 boxes each (the demo's input size; batch 8 as the demo's);
- ``vit``: mmpretrain's DeiT-Tiny (``VisionTransformer`` arch ``deit-tiny``) on images of
  224 x 224, 10 classes;
- ``mlp``: one ViT-Tiny MLP block (LayerNorm, 192 -> 768 -> 192, GELU) on batch x 197 tokens, where
  brevitas's ``QuantLinear`` (W4 per channel, A4 per tensor) stands beside ours, the layer that
  is comparable between the two libraries.

Variants: float; ``w4a4`` (4-bit weights, activations and attention: q, k, v and P);
``w4a4-attn8`` (Q-DETR's 4-4-8); ``-channel``: a step per input channel, as in Q-DETR's
configs (these layers have no integer-grid product); ``w1a1`` (binary weights, activations and attention);
``-fused``: each LSQ / LSQ+ fake quantizer as one pass forward and one backward
(``ModuleSwap(fused=True)``: on the CPU the low-bit extension's pass,
:mod:`mmext.quant.fake_quantize_kernel`, where the layout qualifies, else ``torch.compile``);
``-int``: the forward products of the Linear and 1 x 1 convolution layers on the integer grid
(``ModuleSwap(integer_gemm=True)``, :mod:`mmext.quant.integer_qat`; other convolutions and
attention's matmuls stay fake-quantized). The
stem and the prediction heads stay float, as in the demo's 4-bit config. ``--compile`` adds
``float-compiled`` and ``w4a4-compiled``: the whole model through ``torch.compile`` (the
quantized one after its initialising batches, which run eager), the optimizer step eager.
``--stand-ins`` adds two diagnostic copies of ``w4a4-attn8-channel-fused`` whose low-bit
extension's fake-quantize pass is replaced during their own steps (:class:`StandInPass`), to
show what the passes themselves cost: ``...-no-pass`` returns each quantizer's input and passes
its gradient through (the quantizers cost nothing), ``...-copy`` writes a plain copy of the
input forward and of the gradient backward, or rewrites the gradient where the pass writes over
it in place (the memory a pass writes, with no arithmetic and without reading the input again
backward); the step and zero-point gradients are zeros in both (detr and vit only).
``--fused-adamw`` gives every variant ``AdamW(fused=True)``: one update kernel for all
parameters, where the default loops over them (a quantized model adds a step and a zero point
per quantizer: DeiT-Tiny 392 parameters against 152).
``--optim-wrapper config`` gives every variant the optimizer wrapper ``tools/train.py`` builds
from the model's config (mmengine's ``build_optim_wrapper``: its parameter groups, gradient
clipping and constructor; detr: the demo detector's config, vit: Bi-ViT's DeiT-Tiny recipe
``configs/bivit/deit-tiny_4xb256-300e_in1k.py``): the step users train with. ``--optim-wrapper
default-constructor`` builds the same with mmengine's ``DefaultOptimWrapperConstructor`` and
without ``fused`` (the configs before ``MergedGroupsOptimWrapperConstructor``: a group per
parameter). With either, the results add the optimizer-wrapper steps alone (gradient clipping
and update, on fixed gradients) of every variant under both, side by side.
``--malloc config`` fixes glibc malloc's thresholds as the models' configs ask
(``env_cfg.malloc_cfg``, :mod:`mmext.utils.malloc`: what ``tools/train.py`` applies) before
anything is built; without it the process keeps glibc's adaptive defaults. It is process-wide,
so compare two runs, one with and one without; every variant's minor page faults and system
CPU time per step (medians) are in the results either way. glibc's adaptive thresholds follow
the largest blocks the process has freed, whichever variant freed them (the unfused variants
free larger ones), so ``--variants`` keeps the variants not named out of the process: a
training process holds one model.
Variants run round-robin, one step each per round, so slow drifts of the machine hit all of
them alike; the figure per variant is the median step time, and the ratio is that median over
the float one.
Random weights: the cost of a step does not depend on their values.
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmext.quant import ModuleSwap, QLinear  # noqa: E402
from mmext.utils.atomic import atomic_write  # noqa: E402
from mmext.utils.machine import cpu_description  # noqa: E402
from mmext.utils.malloc import configure_malloc, malloc_cfg_from  # noqa: E402

DEMO_DETR = REPO / 'configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'
VARIANTS = {
    'w4a4': dict(w_bits=4, a_bits=4, attn_bits=4),
    'w4a4-fused': dict(w_bits=4, a_bits=4, attn_bits=4, fused=True),
    'w4a4-int': dict(w_bits=4, a_bits=4, attn_bits=4, integer_gemm=True),
    'w4a4-int-fused': dict(w_bits=4, a_bits=4, attn_bits=4, integer_gemm=True, fused=True),
    'w4a4-attn8': dict(w_bits=4, a_bits=4, attn_bits=8),
    'w4a4-attn8-int-fused': dict(w_bits=4, a_bits=4, attn_bits=8, integer_gemm=True, fused=True),
    # Q-DETR's configs: 4-4-8 with a step per input channel (no integer-grid products)
    'w4a4-attn8-channel': dict(w_bits=4, a_bits=4, attn_bits=8, a_granularity='channel'),
    'w4a4-attn8-channel-fused': dict(w_bits=4, a_bits=4, attn_bits=8, a_granularity='channel',
                                     fused=True),
    'w1a1': dict(w_bits=1, a_bits=1, attn_bits=1),
}


class StandInPass:
    """Stands in for the low-bit extension's fake-quantize pass in the ``--stand-ins``
    diagnostic variants: the extension's other ops are the real ones."""

    def __init__(self, ops, copies: bool):
        self.ops, self.copies = ops, copies

    def __getattr__(self, name):
        return getattr(self.ops, name)

    def fake_quantize_groups(self, x, scale, zero, *args):
        return x.clone() if self.copies else x.view_as(x)

    def fake_quantize_groups_backward(self, grad, x, scale, zero, *args, in_place=False):
        if self.copies:  # what the pass writes: a new tensor, or over the gradient in place
            grad = grad.mul_(1.0) if in_place else grad.clone()
        return grad, torch.zeros_like(scale), None if zero is None else torch.zeros_like(zero)


class Workload:
    """A model, an optimizer and a function running one training step on a fixed batch."""

    optimizer_options = dict(lr=1e-4)  # main() adds fused=True with --fused-adamw
    optim_wrapper_cfg: dict | None = None  # main() sets it per model with --optim-wrapper

    def __init__(self, model: nn.Module, loss_fn, device: str, min_warmup: int = 0,
                 compile_after: int | None = None):
        self.min_warmup = min_warmup  # untimed steps this workload needs at least
        self.model = self.forward_model = model.to(device).train()
        self.loss_fn = loss_fn
        if self.optim_wrapper_cfg is None:
            self.optimizer = torch.optim.AdamW(
                [p for p in self.model.parameters() if p.requires_grad],
                **self.optimizer_options)
        else:  # an mmengine OptimWrapper: step() clips the gradients, then updates
            self.optimizer = build_wrapper(self.model, self.optim_wrapper_cfg)
        # compile_after: eager steps before the whole model goes through torch.compile (the
        # quantizers' data-driven initialisation writes their steps in place, which a compiled
        # backward refuses)
        self.compile_after, self.steps_done = compile_after, 0
        self.stand_in: StandInPass | None = None  # set on the --stand-ins variants

    def step(self) -> None:
        if self.stand_in is None:
            return self._step()
        from unittest import mock

        from mmext.quant import kernels
        with mock.patch.object(kernels, 'lowbit_ops', lambda: self.stand_in):
            self._step()

    def _step(self) -> None:
        if self.steps_done == self.compile_after:
            self.forward_model = torch.compile(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_fn(self.forward_model).backward()
        self.optimizer.step()
        self.steps_done += 1


def detr_workloads(device: str, batch: int = 8, compile_whole: bool = False,
                   stand_ins: bool = False, variants: list[str] | None = None
                   ) -> dict[str, Workload]:
    from mmdet.testing import demo_mm_inputs
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(DEMO_DETR).model
    cfg.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        float_model = MODELS.build(cfg)
        packed = demo_mm_inputs(batch, [[3, 128, 128]] * batch, num_items=[3] * batch,
                                num_classes=10)
        data = float_model.to(device).data_preprocessor(packed, True)

    def loss(model):
        with DefaultScope.overwrite_default_scope('mmdet'):    # forward: what compile wraps
            losses = model(data['inputs'], data['data_samples'], mode='loss')
        return sum(v for k, v in losses.items() if 'loss' in k)

    skip = ['backbone.conv1.conv', 'bbox_head.*']
    return _variants(float_model, loss, device, skip, compile_whole, stand_ins, variants)


def vit_workloads(device: str, batch: int = 8, compile_whole: bool = False,
                  stand_ins: bool = False, variants: list[str] | None = None
                  ) -> dict[str, Workload]:
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        float_model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='VisionTransformer', arch='deit-tiny', img_size=224,
                          patch_size=16, drop_path_rate=0.1),
            neck=None,
            head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=192)))
    images = torch.randn(batch, 3, 224, 224, device=device)
    labels = torch.randint(0, 10, (batch, ), device=device)

    def loss(model):
        return nn.functional.cross_entropy(model(images), labels)

    skip = ['backbone.patch_embed.projection', 'head.*']
    return _variants(float_model, loss, device, skip, compile_whole, stand_ins, variants)


INIT_BATCHES = 10    # LSQ+ initialises its activation steps over the first 10 batches


def _variants(float_model, loss, device, skip, compile_whole: bool,
              stand_ins: bool = False, variants: list[str] | None = None
              ) -> dict[str, Workload]:
    """float and every :data:`VARIANTS` entry (or those named in ``variants``); with
    ``compile_whole`` also float and w4a4 with the whole model through ``torch.compile`` (the
    optimizer step stays eager); with ``stand_ins`` the two :class:`StandInPass` copies of the
    per-channel fused variant."""
    workloads = {'float': Workload(float_model, loss, device)}
    for name, bits in VARIANTS.items():
        if variants is not None and name not in variants:
            continue
        model = ModuleSwap(**bits, skip=skip)(copy.deepcopy(float_model))
        workloads[name] = Workload(model, loss, device)
    if compile_whole:
        workloads['float-compiled'] = Workload(copy.deepcopy(float_model), loss, device,
                                               compile_after=0)
        model = ModuleSwap(**VARIANTS['w4a4'], skip=skip)(copy.deepcopy(float_model))
        workloads['w4a4-compiled'] = Workload(model, loss, device, min_warmup=INIT_BATCHES + 4,
                                              compile_after=INIT_BATCHES)
    if stand_ins:
        base = 'w4a4-attn8-channel-fused'
        from mmext.quant.kernels import lowbit_ops
        for name, copy_pass in (('no-pass', False), ('copy', True)):
            model = ModuleSwap(**VARIANTS[base], skip=skip)(copy.deepcopy(float_model))
            workloads[f'{base}-{name}'] = workload = Workload(model, loss, device)
            workload.stand_in = StandInPass(lowbit_ops(), copy_pass)
    return workloads


class MLPBlock(nn.Module):
    """x + fc2(GELU(fc1(LN(x)))) over (B, N, 192) tokens, as in a ViT-Tiny block."""

    def __init__(self, fc1: nn.Module, fc2: nn.Module):
        super().__init__()
        self.norm, self.fc1, self.act, self.fc2 = nn.LayerNorm(192), fc1, nn.GELU(), fc2

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


def mlp_workloads(device: str, batch: int = 8, compile_whole: bool = False,
                  stand_ins: bool = False, variants: list[str] | None = None
                  ) -> dict[str, Workload]:
    tokens = torch.randn(batch, 197, 192, device=device)

    def loss(model):
        return model(tokens).square().mean()

    w4a4 = dict(w_quantizer=dict(type='LSQQuantizer', bits=4, per_channel=True),
                a_quantizer=dict(type='LSQPlusQuantizer', bits=4))
    workloads = {
        'float': Workload(MLPBlock(nn.Linear(192, 768), nn.Linear(768, 192)), loss, device),
        'w4a4': Workload(MLPBlock(QLinear(192, 768, **w4a4), QLinear(768, 192, **w4a4)), loss,
                         device),
    }
    integer = MLPBlock(QLinear(192, 768, **w4a4), QLinear(768, 192, **w4a4))
    integer.fc1.integer_gemm = integer.fc2.integer_gemm = True
    workloads['w4a4-int'] = Workload(integer, loss, device)
    try:
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat
    except ImportError:
        print('brevitas is not installed (pip install brevitas): its column is left out')
        return workloads

    def brevitas_linear(i, o):
        return qnn.QuantLinear(i, o, bias=True, weight_quant=Int8WeightPerChannelFloat,
                               weight_bit_width=4, input_quant=Int8ActPerTensorFloat,
                               input_bit_width=4, return_quant_tensor=False)

    # brevitas's activation scales collect percentile statistics over their first 300
    # training steps (collect_stats_steps), a slower phase: time it after that.
    workloads['brevitas-w4a4'] = Workload(
        MLPBlock(brevitas_linear(192, 768), brevitas_linear(768, 192)), loss, device,
        min_warmup=310)
    return workloads


BUILDERS = {'detr': detr_workloads, 'vit': vit_workloads, 'mlp': mlp_workloads}
# the configs whose optim_wrapper --optim-wrapper takes
OPTIM_CONFIGS = {'detr': DEMO_DETR, 'vit': REPO / 'configs/bivit/deit-tiny_4xb256-300e_in1k.py'}


def optim_wrapper_cfg(model: str, which: str) -> dict:
    """The ``optim_wrapper`` of the model's config; with ``which='default-constructor'`` built
    by mmengine's default constructor, without ``fused``."""
    from mmengine.config import Config
    cfg = Config.fromfile(OPTIM_CONFIGS[model]).optim_wrapper.to_dict()
    if which == 'default-constructor':
        cfg.pop('constructor', None)
        cfg['optimizer'].pop('fused', None)
    return cfg


def build_wrapper(model: nn.Module, cfg: dict):
    from mmengine.optim import build_optim_wrapper
    return build_optim_wrapper(model, copy.deepcopy(cfg))


def measure_optimizers(workloads: dict[str, Workload], cfgs: dict[str, dict],
                       steps: int) -> dict:
    """Median ms of an optimizer-wrapper step alone (gradient clipping and update) of every
    workload's model under each of ``cfgs``, on fixed random gradients, round-robin."""
    generator = torch.Generator().manual_seed(0)
    wrappers = {}
    for name, workload in workloads.items():
        params = [p for p in workload.model.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator).to(p) * 1e-3
        for key, cfg in cfgs.items():
            wrapper = build_wrapper(workload.model, cfg)
            wrappers[name, key] = wrapper, len(params), len(wrapper.optimizer.param_groups)
    times = {k: [] for k in wrappers}
    for _ in range(steps):
        for k, (wrapper, _, _) in wrappers.items():
            start = time.perf_counter()
            wrapper.step()
            times[k].append(time.perf_counter() - start)
    results = {}
    for (name, key), (_, n_params, n_groups) in wrappers.items():
        results.setdefault(name, dict(parameters=n_params))[key] = dict(
            median_ms=round(statistics.median(times[name, key]) * 1e3, 2), groups=n_groups)
    return results


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def measure(workloads: dict[str, Workload], steps: int, warmup: int, device: str) -> dict:
    """Median seconds per step of each workload, measured round-robin, with the process's
    minor page faults and system CPU time (all threads) per step, medians too."""
    for workload in workloads.values():
        # also runs the quantizers' data-driven initialisation
        for _ in range(max(warmup, workload.min_warmup)):
            workload.step()
    times = {name: [] for name in workloads}
    faults = {name: [] for name in workloads}
    system = {name: [] for name in workloads}
    for _ in range(steps):
        for name, workload in workloads.items():
            _sync(device)
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            workload.step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_SELF)
            faults[name].append(after.ru_minflt - before.ru_minflt)
            system[name].append(after.ru_stime - before.ru_stime)
    base = statistics.median(times['float'])
    return {name: dict(median_s=round(statistics.median(t), 5),
                       ratio_to_float=round(statistics.median(t) / base, 3),
                       steps=len(t), minor_faults_per_step=statistics.median(faults[name]),
                       system_ms_per_step=round(statistics.median(system[name]) * 1e3, 1))
            for name, t in times.items()}


def configs_malloc_cfg(models: list[str]) -> dict:
    """The ``env_cfg.malloc_cfg`` the models' configs (:data:`OPTIM_CONFIGS`) name; they
    must agree, since the setting is process-wide."""
    from mmengine.config import Config
    cfgs = {model: malloc_cfg_from(Config.fromfile(OPTIM_CONFIGS[model]).get('env_cfg'))
            for model in models}
    if None in cfgs.values() or len({tuple(c.items()) for c in cfgs.values()}) != 1:
        raise SystemExit(f'--malloc config needs one env_cfg.malloc_cfg in the configs of '
                         f'{models}, got {cfgs}')
    return next(iter(cfgs.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument('--steps', type=int, default=15, help='timed steps per variant')
    parser.add_argument('--warmup', type=int, default=12,
                        help='untimed steps first (LSQ+ initialises over 10)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='images per step (8: the demo detector\'s batch)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--compile', action='store_true',
                        help='add float and w4a4 with the whole model compiled '
                             '(torch.compile; the optimizer step stays eager)')
    parser.add_argument('--stand-ins', action='store_true',
                        help='add w4a4-attn8-channel-fused with its fake-quantize passes '
                             'replaced by no pass and by plain copies (detr and vit; see above)')
    parser.add_argument('--fused-adamw', action='store_true',
                        help='AdamW(fused=True) for every variant: one update kernel for all '
                             'parameters instead of a loop over them (a quantized model adds '
                             'a step and a zero point per quantizer)')
    parser.add_argument('--optim-wrapper', choices=['config', 'default-constructor'],
                        help="every variant's optimizer wrapper from the model's config "
                             "(mmengine's build_optim_wrapper), or the same with mmengine's "
                             'default constructor and no fused update (detr and vit); adds the '
                             'optimizer steps alone under both')
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS),
                        help='only these quantized variants beside float (detr and vit; all '
                             'by default): the allocations of the variants left out then do '
                             "not shape glibc's heap for the others")
    parser.add_argument('--malloc', choices=['default', 'config'], default='default',
                        help="glibc malloc's adaptive thresholds (default), or the ones the "
                             "models' configs fix (env_cfg.malloc_cfg, as tools/train.py "
                             'applies them; detr and vit)')
    parser.add_argument('--out', type=Path,
                        default=REPO / 'benchmarks/results/quant_overhead.json')
    args = parser.parse_args()
    if args.optim_wrapper and 'mlp' in args.models:
        parser.error('--optim-wrapper takes the detr and vit configs; leave mlp out '
                     '(--models detr vit)')
    if args.optim_wrapper and args.fused_adamw:
        parser.error('--fused-adamw and --optim-wrapper both choose the optimizer: give one')
    if args.variants and 'mlp' in args.models:
        parser.error('--variants selects detr and vit variants; leave mlp out '
                     '(--models detr vit)')
    if args.stand_ins and 'mlp' in args.models:
        parser.error('--stand-ins replaces the passes of the detr and vit variants; leave mlp '
                     'out (--models detr vit)')
    if args.compile and 'mlp' in args.models:
        parser.error('--compile compiles the detr and vit models; leave mlp out '
                     '(--models detr vit)')
    malloc = 'glibc defaults'
    if args.malloc == 'config':
        if 'mlp' in args.models:
            parser.error('--malloc config takes the detr and vit configs; leave mlp out '
                         '(--models detr vit)')
        malloc_cfg = configs_malloc_cfg(args.models)
        malloc = malloc_cfg if configure_malloc(**malloc_cfg) else 'not glibc: unchanged'
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.fused_adamw:
        Workload.optimizer_options = dict(lr=1e-4, fused=True)
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith('cuda') \
        else cpu_description()
    results = dict(
        command='python benchmarks/quant_overhead.py ' + ' '.join(sys.argv[1:]),
        device=device_name, torch=torch.__version__, steps=args.steps, warmup=args.warmup,
        batch_size=args.batch_size,
        optimizer=(f"the model's config's optim_wrapper ({args.optim_wrapper})"
                   if args.optim_wrapper else f'AdamW {Workload.optimizer_options}'),
        target='w4a4 step <= 1.2x the float step', malloc=malloc, models={})
    for model in args.models:
        print(f'{model}: building the variants ...', flush=True)
        if args.optim_wrapper:
            Workload.optim_wrapper_cfg = optim_wrapper_cfg(model, args.optim_wrapper)
            results.setdefault('optim_wrappers', {})[model] = Workload.optim_wrapper_cfg
        workloads = BUILDERS[model](args.device, args.batch_size, args.compile, args.stand_ins,
                                    args.variants)
        results['models'][model] = measure(workloads, args.steps, args.warmup, args.device)
        for name, row in results['models'][model].items():
            print(f"  {name:<34} {row['median_s'] * 1e3:9.1f} ms  {row['ratio_to_float']:.2f}x"
                  f"  {row['minor_faults_per_step']:8.0f} page faults "
                  f"{row['system_ms_per_step']:6.1f} ms system", flush=True)
        if args.optim_wrapper:
            cfgs = {which: optim_wrapper_cfg(model, which)
                    for which in ('config', 'default-constructor')}
            rows = measure_optimizers(workloads, cfgs, steps=25)
            results.setdefault('optimizer_steps_alone', {})[model] = rows
            print('  optimizer-wrapper steps alone, ms (groups): config | default constructor')
            for name, row in rows.items():
                a, b = row['config'], row['default-constructor']
                print(f"  {name:<34} {a['median_ms']:7.1f} ({a['groups']}) | "
                      f"{b['median_ms']:7.1f} ({b['groups']})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, json.dumps(results, indent=2) + '\n')
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
