"""Inference speed of exported low-bit models on mmext's kernels against float32, side by side.

    python benchmarks/lowbit_inference.py            # writes benchmarks/results/lowbit_inference.json
    python benchmarks/lowbit_inference.py --quick    # fewer repetitions (plumbing check)

Per layer (random weights; times include quantizing and packing the float input, as in a model):
DeiT-Tiny's linear layers (197 tokens per image: qkv 192 -> 576, proj 192 -> 192, fc1 192 -> 768,
fc2 768 -> 192), its MLP (fc1, GELU, fc2: binary as a :class:`BinaryLinearPair`, whose fc1 hands
fc2 its signs), ResNet-18's 3 x 3 convolutions (64 ch at 56 x 56, 128 at 28, 256 at 14, 512
at 7), MobileNetV2's depthwise 3 x 3 (144 ch at 56 x 56) and ResNeXt-50's grouped 3 x 3 (128 ch
in 32 groups at 56 x 56; both with channels-last input), batch 1 and 8: float32 (``F.linear``
/ ``F.conv2d``: MKL / oneDNN) against :class:`mmext.quant.runtime.BinaryLinear` /
``BinaryConv2d`` (XNOR-popcount) and ``IntLinear`` / ``IntConv2d`` at 8 bits (a convolution's
levels at LSQ's initial step of the float weight): the default routes (``backend='auto'``),
``backend='int_mm'`` (``torch._int_mm``; a grouped layer's exact float32 convolution) and
``backend='onednn'`` (oneDNN's int8 linear / convolution; all give the same floats); the
depthwise layer's binary and 8-bit versions run the compiled depthwise kernel, and side by side
the routes without it (an exact float32 convolution of the signs / levels, ``groups=C``, and
oneDNN's int8 convolution; the same floats). For the
linear layers, a memory floor: reading the float input once (``x.sum()``) and writing a fresh
float output once (``fill_``); a layer with float input and output can hardly beat float32 by
more than float time over this.

End to end (batch 8, random weights, quantizers initialised on one batch, exported with
:func:`mmext.quant.export_quantized` and rebuilt by :func:`mmext.quant.build_runtime_model`):
Bi-ViT's binary DeiT-Tiny with a real and with a binary patch embedding, the demo detector with
Q-DETR's 4-4-8 quantization (per-tensor input steps: the per-channel steps of the demo config do
not factor out of an integer GEMM, see the README), and the DCP-NAS 1-bit network of the
Fashion-MNIST demo. Float: the network as the library builds it before the quantization swap
(mmpretrain's DeiT-Tiny with its fused attention; DCP-NAS's cells with real-valued
operations). The runtime model's outputs are compared with the fake-quantized model's (largest
difference, same argmax); where the runtime pairs binary layers (an MLP's fc1 handing fc2 its
signs), the same runtime without pairs is timed too, and its outputs compared with the paired
one's (``pairs_change_nothing``: equal bit for bit); where it has integer layers, the same
runtime with ``int8_backend='int_mm'`` is timed and its outputs compared with the default's
(``int_mm_same_outputs``: equal bit for bit); where it has binary attention, the same runtime
with ``fuse_softmax=False`` (logits written out, torch's softmax, then P's packing) is timed and
its outputs compared (``fused_softmax_changes_nothing``); where the runtime folds BatchNorms
into the convolutions before them, the float model with the same BatchNorms folded (torch's
``fuse_conv_bn_weights``: the float baseline of a deployment that folds them) and the runtime
with them kept (``bn_kept_max_difference``) are timed too; where it has depthwise layers, the
same runtime with ``depthwise_kernel=False`` and ``int8_backend='int_mm'`` (torch's float32
convolutions of the levels / signs) is timed and its outputs compared
(``depthwise_kernel_changes_nothing``); where integer layers hand the next their int8 levels,
the same runtime with ``chain_integer=False``
(``chains_change_nothing``); where binary attention takes q's and k's signs straight from their
LayerNorm (Bi-ViT's qk-norm), the same runtime with ``fuse_layer_norm=False`` (torch's
LayerNorm, then the packing: ``fused_layer_norm_changes_nothing``); ``breakdown_ms`` says
where each runtime's time goes (each kernel, the top torch operators; profiled, so compare
shares).

Variants run round-robin, one call each per round, in a new seeded order each round; the figure
is the median time, the ratio float time over kernel time (above 1: the kernel is faster).
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from mmext.quant.export import export_quantized  # noqa: E402
from mmext.quant.kernels import lowbit_ops  # noqa: E402
from mmext.quant.quantizers import LSQPlusQuantizer  # noqa: E402
from mmext.quant.runtime import (  # noqa: E402
    BinaryAttention,
    BinaryConv2d,
    BinaryLinear,
    BinaryLinearPair,
    IntConv2d,
    IntLinear,
    build_runtime_model,
    layer_norm_of,
    norms_after_convs,
    onednn_int8_conv_sums_exact,
    onednn_int8_sums_exact,
    sign_thresholds,
)
from mmext.utils.atomic import atomic_write  # noqa: E402
from mmext.utils.machine import cpu_description  # noqa: E402

OUT = REPO / 'benchmarks/results/lowbit_inference.json'
DEIT_LINEARS = {'qkv': (192, 576), 'proj': (192, 192), 'fc1': (192, 768), 'fc2': (768, 192)}
INT8_BACKENDS = ('auto', 'int_mm', 'onednn')
RESNET_CONVS = {'conv 64 @56': (64, 56), 'conv 128 @28': (128, 28), 'conv 256 @14': (256, 14),
                'conv 512 @7': (512, 7)}
# (channels, size, groups): MobileNetV2's depthwise 3 x 3 at 56 x 56 (the layers the demo DETR
# and DCP-NAS are built of) and ResNeXt-50 (32 x 4d)'s grouped 3 x 3 of its first stage
GROUPED_CONVS = {'mobilenet-v2 depthwise 144 @56': (144, 56, 144),
                 'resnext-50 grouped 128 @56 (32 groups)': (128, 56, 32)}
DEMO_DETR = REPO / 'configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'
QDETR_DEMO = REPO / 'configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py'
DCPNAS_DEMO = REPO / 'configs/dcpnas/dcpnas-retrain_1xb128-3e_fashion-mnist.py'
# the papers' theoretical accelerations (operation counts), for the table
PAPER = {'bivit_deit-tiny': 'Bi-ViT: 61.5x fewer OPs (DeiT-S, binary)',
         'qdetr_demo_w4a4-attn8': 'Q-DETR: 6.6x (R50 4-bit, theoretical)',
         'dcpnas_demo': 'DCP-NAS: OPs counted, no wall time'}


def timed(functions: dict, reps: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin, each round in a new
    (seeded) order: in a fixed order one variant always ran right after the same other and
    paid for it (the same layer under two names differed by up to 46%)."""
    order = random.Random(0)
    with torch.inference_mode():
        for fn in functions.values():
            for _ in range(warmup):
                fn()
        times = {name: [] for name in functions}
        for _ in range(reps):
            for name, fn in order.sample(list(functions.items()), len(functions)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _int_quantizer(bits: int, x: torch.Tensor) -> LSQPlusQuantizer:
    q = LSQPlusQuantizer(bits=bits)
    q.eval()(x)                                   # data-free initialisation on this input
    return q


def _lsq_levels(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """The int8 levels of a float weight (N, ...) at LSQ's initial step per output channel,
    ``2 mean |w| / sqrt(Qp)``: about as spread as a trained 8-bit weight's (mean level about
    sqrt(Qp) / 2), where uniform random levels over the whole int8 range would put a
    convolution of 1152 or more inputs past the bound of oneDNN's exact sums (2^24)."""
    qp = 2 ** (bits - 1) - 1
    step = 2 * w.abs().flatten(1).mean(1) / qp ** 0.5
    shape = (-1, ) + (1, ) * (w.dim() - 1)
    return (w / step.view(shape)).round().clamp(-qp - 1, qp).to(torch.int8)


def _row(times: dict[str, float]) -> dict:
    base = times['float32']
    return {name: dict(ms=round(t * 1e3, 4), speedup=round(base / t, 2))
            for name, t in times.items()}


def _mlp_variants(batch: int, g: torch.Generator) -> dict:
    """DeiT-Tiny's MLP (fc1 192 -> 768, GELU, fc2 768 -> 192): float32; binary, fc2's input
    signs (RSign threshold per channel) straight from fc1's dots (:class:`BinaryLinearPair`);
    8-bit IntLinear layers with the GELU between them (the default GEMM and ``torch._int_mm``)."""
    x = torch.randn(batch, 197, 192, generator=g)
    w1, w2 = torch.randn(768, 192, generator=g) * 0.05, torch.randn(192, 768, generator=g) * 0.05
    b1, b2 = torch.randn(768, generator=g) * 0.1, torch.randn(192, generator=g)
    fc1 = BinaryLinear(torch.where(w1 >= 0, 1.0, -1.0), w1.abs().mean(1) / 192 ** 0.5, b1)
    fc2 = BinaryLinear(torch.where(w2 >= 0, 1.0, -1.0), w2.abs().mean(1), b2,
                       torch.randn(768, generator=g) * 0.1)
    gelu = torch.nn.GELU()
    pair = BinaryLinearPair(fc1, gelu, fc2, *sign_thresholds(fc1, gelu, fc2, lowbit_ops()))
    hidden = F.gelu(F.linear(x, w1, b1))
    int1, plain1, onednn1 = _int8_layers(IntLinear, torch.randint(
        -127, 128, (768, 192), generator=g, dtype=torch.int8), b1, _int_quantizer(8, x),
        backends=INT8_BACKENDS)
    int2, plain2, onednn2 = _int8_layers(IntLinear, torch.randint(
        -127, 128, (192, 768), generator=g, dtype=torch.int8), b2, _int_quantizer(8, hidden),
        backends=INT8_BACKENDS)
    return {'float32': lambda: F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2),
            'binary': lambda: pair(x),
            'int8': lambda: int2(F.gelu(int1(x))),
            'int8 _int_mm': lambda: plain2(F.gelu(plain1(x))),
            **({'int8 oneDNN': lambda: onednn2(F.gelu(onednn1(x)))} if onednn1 else {})}


def _int8_layers(cls, ints, bias, quantizer, *conv_args, backends=INT8_BACKENDS, **options):
    """The 8-bit layer on each of ``backends``: the default route ('auto'), ``torch._int_mm``
    ('int_mm'; a grouped convolution's exact float32 convolution) and oneDNN's int8 linear /
    convolution ('onednn'; None where this torch has no exact one)."""
    scale = torch.full((ints.shape[0], ), 1e-3)
    exact = onednn_int8_conv_sums_exact() if cls is IntConv2d else onednn_int8_sums_exact()
    return tuple(None if backend == 'onednn' and not exact
                 else cls(ints, scale, bias, quantizer, *conv_args, backend=backend, **options)
                 for backend in backends)


def layer_rows(batches, reps, warmup) -> dict:
    g = torch.Generator().manual_seed(0)
    rows = {}
    for batch in batches:
        for name, (k, n) in DEIT_LINEARS.items():
            x = torch.randn(batch, 197, k, generator=g)
            w = torch.randn(n, k, generator=g) * 0.05
            b = torch.randn(n, generator=g)
            signs = torch.where(w >= 0, 1.0, -1.0)
            binary = BinaryLinear(signs, w.abs().mean(1), b)
            ints = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
            int8, plain, onednn = _int8_layers(IntLinear, ints, b, _int_quantizer(8, x),
                                               backends=INT8_BACKENDS)
            rows[f'deit-tiny {name} b{batch}'] = _row(timed({
                'float32': lambda x=x, w=w, b=b: F.linear(x, w, b),
                'binary': lambda x=x, m=binary: m(x),
                'int8': lambda x=x, m=int8: m(x),
                'int8 _int_mm': lambda x=x, m=plain: m(x),
                **({'int8 oneDNN': lambda x=x, m=onednn: m(x)} if onednn else {}),
                'memory floor': lambda x=x, n=n: (x.sum(), x.new_empty(*x.shape[:-1], n).fill_(1)),
            }, reps, warmup))
        rows[f'deit-tiny mlp (fc1, GELU, fc2) b{batch}'] = _row(timed(
            _mlp_variants(batch, g), reps, warmup))
        for name, (c, size) in RESNET_CONVS.items():
            x = torch.randn(batch, c, size, size, generator=g)
            w = torch.randn(c, c, 3, 3, generator=g) * 0.05
            b = torch.randn(c, generator=g)
            binary = BinaryConv2d(torch.where(w >= 0, 1.0, -1.0), w.abs().mean((1, 2, 3)), b,
                                  1, 1, 1)
            ints = _lsq_levels(w)
            int8, plain, onednn = _int8_layers(IntConv2d, ints, b, _int_quantizer(8, x),
                                               (1, 1), (1, 1), (1, 1), backends=INT8_BACKENDS)
            rows[f'resnet-18 {name} b{batch}'] = _row(timed({
                'float32': lambda x=x, w=w, b=b: F.conv2d(x, w, b, 1, 1),
                'binary': lambda x=x, m=binary: m(x),
                'int8': lambda x=x, m=int8: m(x),
                'int8 _int_mm': lambda x=x, m=plain: m(x),
                **({'int8 oneDNN': lambda x=x, m=onednn: m(x)} if onednn else {})},
                reps, warmup))
        for name, (c, size, groups) in GROUPED_CONVS.items():
            # every variant gets the channels-last input a runtime layer hands on (float32's
            # depthwise convolution is also faster on it here than on NCHW)
            x = torch.randn(batch, c, size, size, generator=g).contiguous(
                memory_format=torch.channels_last)
            w = torch.randn(c, c // groups, 3, 3, generator=g) * 0.3
            b = torch.randn(c, generator=g)
            signs, w_scale = torch.where(w >= 0, 1.0, -1.0), w.abs().mean((1, 2, 3))
            ints = _lsq_levels(w)
            conv_args = (ints, b, _int_quantizer(8, x), (1, 1), (1, 1), (1, 1))
            # the default routes (a depthwise layer: the depthwise kernels; int8 otherwise:
            # oneDNN's convolution where exact) and beside them torch's float32 convolution of
            # the signs / levels, between a sign (quantization) pass and the epilogue pass, and
            # oneDNN's int8 convolution
            binary = BinaryConv2d(signs, w_scale, b, 1, 1, 1, groups=groups)
            binary_conv = BinaryConv2d(signs, w_scale, b, 1, 1, 1, groups=groups,
                                       depthwise_kernel=False)
            int8, int8_conv, int8_onednn = _int8_layers(
                IntConv2d, *conv_args, groups=groups, depthwise_kernel=False)
            if binary.depthwise:
                int8 = _int8_layers(IntConv2d, *conv_args, backends=('auto', ), groups=groups)[0]
            layers = {'binary': binary, 'binary, float32 convolution': binary_conv, 'int8': int8,
                      'int8, float32 convolution': int8_conv,
                      'int8, oneDNN convolution': int8_onednn}
            layers = {key: layer for key, layer in layers.items() if layer is not None}
            with torch.no_grad():
                same = all(torch.equal(layers[key](x), layers[key.split(',')[0]](x))
                           for key in layers if ',' in key)
            rows[f'{name} b{batch}'] = dict(_row(timed({
                'float32': lambda x=x, w=w, b=b, c=groups: F.conv2d(x, w, b, 1, 1, 1, c),
                **{key: (lambda x=x, m=layer: m(x)) for key, layer in layers.items()}},
                reps, warmup)), routes_same_outputs=same,
                routes={key: getattr(layer, 'gemm', 'depthwise' if layer.depthwise else 'float32')
                        for key, layer in layers.items()})
        print(f'layers, batch {batch}: done', flush=True)
    return rows


# ------------------------------------------------------------------------------ end to end
def _bivit(binary_patch_embed: bool):
    from mmengine.registry import DefaultScope

    import projects.bivit  # noqa: F401  (registers BiViTSwap)
    from mmext.registry import QUANTIZERS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='VisionTransformer', arch='deit-tiny', img_size=224,
                          patch_size=16),
            neck=None, head=dict(type='VisionTransformerClsHead', num_classes=1000,
                                 in_channels=192)))
    quant = QUANTIZERS.build(dict(type='BiViTSwap', binary_patch_embed=binary_patch_embed))
    x = torch.randn(8, 3, 224, 224)
    return copy.deepcopy(model), quant(model), (lambda m: m(x, mode='tensor'))


def _qdetr():
    from mmdet.testing import demo_mm_inputs
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmext.registry import QUANTIZERS
    cfg = Config.fromfile(DEMO_DETR).model
    cfg.backbone.init_cfg = None
    quant = dict(Config.fromfile(QDETR_DEMO).model.quant)
    quant.update(a_granularity='tensor', calibration=None)
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        model = MODELS.build(cfg)
        packed = demo_mm_inputs(8, [[3, 128, 128]] * 8, num_items=[3] * 8, num_classes=10)
        data = model.data_preprocessor(packed, False)
    float_model = copy.deepcopy(model)
    model = QUANTIZERS.build(quant)(model)

    def run(m):
        with DefaultScope.overwrite_default_scope('mmdet'):
            return m(data['inputs'], data['data_samples'], mode='tensor')
    return float_model, model, run


def _dcpnas():
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import mmext  # noqa: F401
    cfg = Config.fromfile(DCPNAS_DEMO).model
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        model = MODELS.build(cfg)
        cfg.backbone.binary = False
        float_model = MODELS.build(cfg)
    x = torch.randn(8, 1, 28, 28)
    return float_model, model, (lambda m: m(x, mode='tensor'))


MODELS = {'bivit_deit-tiny': lambda: _bivit(False),
          'bivit_deit-tiny_binary-patch-embed': lambda: _bivit(True),
          'qdetr_demo_w4a4-attn8': _qdetr,
          'dcpnas_demo': _dcpnas}


def fold_float_batch_norms(model: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """The float ``model`` (changed in place, in eval mode) with each BatchNorm that runs right
    after a convolution folded into its weight and bias (torch's ``fuse_conv_bn_weights``; the
    same pairs the runtime folds, :func:`norms_after_convs`), and how many: the float baseline
    of a deployment that folds them."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights
    pairs = list(norms_after_convs(model.eval(), (torch.nn.Conv2d, )))
    for _, _, conv, norm, drop in pairs:
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps, norm.weight,
            norm.bias)
        drop()
    return model, len(pairs)


def _flat(out) -> torch.Tensor:
    leaves = [out] if isinstance(out, torch.Tensor) else \
        [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
    return torch.cat([t.float().flatten() for t in leaves])


class _TimedKernels:
    """The compiled kernels with the wall time of each call summed per kernel."""

    def __init__(self, ops):
        self.ops, self.seconds = ops, {}

    def __getattr__(self, name):
        function = getattr(self.ops, name)

        def timed_call(*args, **kwargs):
            start = time.perf_counter()
            out = function(*args, **kwargs)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            return out
        return timed_call


def breakdown(run, model, reps: int = 5, top: int = 8) -> dict[str, float]:
    """Where one forward of the runtime ``model`` spends its time, ms per forward: each
    compiled kernel (wall time of its calls) and the ``top`` torch operators (``aten::``) by
    self CPU time (torch.profiler), over ``reps`` forwards. Other profiler events are left out:
    an autograd Function's self time (``_KernelFakeQuantize``) holds the kernel calls inside
    it, already counted. Profiling slows both; compare shares."""
    from torch.profiler import ProfilerActivity, profile

    from mmext.quant import kernels
    ops = kernels.lowbit_ops()
    timed_ops = _TimedKernels(ops)
    kernels._STATE['ops'] = timed_ops          # the runtime looks its kernels up on each use
    try:
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                run(model)
    finally:
        kernels._STATE['ops'] = ops
    aten = sorted(((e.key, e.self_cpu_time_total / 1e3 / reps) for e in prof.key_averages()
                   if e.key.startswith('aten::')), key=lambda kv: -kv[1])[:top]
    out = {f'kernel {k}': v * 1e3 / reps for k, v in timed_ops.seconds.items()}
    out |= {k: v for k, v in aten}
    return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def layer_norm_rows_to_torch(run, model) -> dict:
    """How many rows of q's and k's fused LayerNorm the kernel leaves to torch's LayerNorm, per
    call, in one forward of ``model`` (inputs caught by a pre-hook on each attention)."""
    inputs = []
    attentions = [m for m in model.modules() if isinstance(m, BinaryAttention)]
    handles = [m.register_forward_pre_hook(lambda m, args: inputs.append((m, args[0], args[1])))
               for m in attentions]
    try:
        run(model)
    finally:
        for handle in handles:
            handle.remove()
    counts, rows = [], 0
    for module, query, key in inputs:
        for name, count in module.layer_norm_rows_to_torch(query, key).items():
            if count is not None:
                x = query if name == 'q' else key
                counts.append(count)
                rows = x.numel() // x.shape[-1]
    return dict(rows_per_call=rows, to_torch=counts)


def model_row(name: str, reps: int, warmup: int, folder: Path) -> dict:
    torch.manual_seed(0)
    float_model, quantized, run = MODELS[name]()
    structure = copy.deepcopy(quantized)
    with torch.no_grad():
        quantized.eval()
        run(quantized)                              # initialises the quantizers' steps
    path = folder / f'{name}.safetensors'
    export_quantized(quantized, path)
    (unpaired_structure, int_mm_structure, unfused_structure, kept_structure, conv_structure,
     unchained_structure, norm_structure) = (copy.deepcopy(structure) for _ in range(7))
    runtime, report = build_runtime_model(structure, path)
    float_model.eval()
    with torch.inference_mode():
        expected_out, got_out = run(quantized), run(runtime)
    expected, got = _flat(expected_out), _flat(got_out)
    agreement = None
    if isinstance(expected_out, torch.Tensor) and expected_out.dim() == 2:   # class scores
        agreement = float((expected_out.argmax(1) == got_out.argmax(1)).float().mean())
    functions = {'float32': lambda: run(float_model), 'fake-quantized': lambda: run(quantized),
                 'runtime': lambda: run(runtime)}
    extra = {}                                  # rows only some models have
    paired = sum(fused for _, fused, _ in report.pairs)
    if paired:                                  # the same runtime without pairs, side by side
        unpaired, _ = build_runtime_model(unpaired_structure, path, pair_binary_layers=False)
        functions['runtime without pairs'] = lambda: run(unpaired)
        with torch.inference_mode():
            extra = dict(pairs_change_nothing=bool(torch.equal(_flat(run(unpaired)), got)))
    if report.counts().get('binary attention'):  # the same runtime, softmax not fused
        unfused, _ = build_runtime_model(unfused_structure, path, fuse_softmax=False)
        functions['runtime, softmax unfused'] = lambda: run(unfused)
        with torch.inference_mode():
            extra['fused_softmax_changes_nothing'] = bool(torch.equal(_flat(run(unfused)), got))
    if any(isinstance(m, BinaryAttention) and layer_norm_of(m.q_transform) is not None
           for m in runtime.modules()):     # q's and k's LayerNorm: the same, unfused
        norms, _ = build_runtime_model(norm_structure, path, fuse_layer_norm=False)
        functions['runtime, LayerNorm unfused'] = lambda: run(norms)
        with torch.inference_mode():
            extra['fused_layer_norm_changes_nothing'] = bool(torch.equal(_flat(run(norms)), got))
            extra['layer_norm_rows_to_torch'] = layer_norm_rows_to_torch(run, runtime)
    if report.folded:           # BatchNorms folded: into the float model too; and kept
        folded_float, count = fold_float_batch_norms(copy.deepcopy(float_model))
        kept, _ = build_runtime_model(kept_structure, path, fold_batch_norm=False)
        functions['float32, BN folded'] = lambda: run(folded_float)
        functions['runtime, BN kept'] = lambda: run(kept)
        with torch.inference_mode():
            extra |= dict(batch_norms_folded=len(report.folded), float_batch_norms_folded=count,
                          bn_kept_max_difference=float((_flat(run(kept)) - got).abs().max()),
                          float_bn_folded_max_difference=float(
                              (_flat(run(folded_float)) - _flat(run(float_model))).abs().max()))
    if any(getattr(m, 'depthwise', False) for m in runtime.modules()):
        convs, _ = build_runtime_model(conv_structure, path, depthwise_kernel=False,
                                       int8_backend='int_mm')
        functions['runtime, depthwise on float32 convolutions'] = lambda: run(convs)
        with torch.inference_mode():
            extra['depthwise_kernel_changes_nothing'] = bool(torch.equal(_flat(run(convs)), got))
    if report.chains:           # integer layers handing on int8 levels: the same, not chained
        unchained, _ = build_runtime_model(unchained_structure, path, chain_integer=False)
        functions['runtime, integer layers not chained'] = lambda: run(unchained)
        with torch.inference_mode():
            extra['chains'] = len(report.chains)
            extra['chains_change_nothing'] = bool(torch.equal(_flat(run(unchained)), got))
    if report.gemms:                            # the same runtime on torch._int_mm
        plain, _ = build_runtime_model(int_mm_structure, path, int8_backend='int_mm')
        functions['runtime, int8 on _int_mm'] = lambda: run(plain)
        with torch.inference_mode():
            extra['int_mm_same_outputs'] = bool(torch.equal(_flat(run(plain)), got))
        extra['gemms'] = report.gemms
        extra['outputs_moved_1e-3'] = int(((got - expected).abs() > 1e-3).sum())
        extra['outputs'] = expected.numel()
    times = timed(functions, reps, warmup)
    kept = report.kept()
    extra['breakdown_ms'] = breakdown(run, runtime)
    return dict(_row(times), **extra, layers=report.counts(), binary_pairs=paired,
                kept_fake_quantized=sorted({why for _, why in kept}),
                max_abs_difference=float((expected - got).abs().max()),
                max_abs_output=float(expected.abs().max()), same_argmax=agreement,
                paper=PAPER.get(name.split('_binary')[0], ''))


def table(results: dict) -> str:
    lines = ['| layer | float32 ms | binary ms | speed-up | int8 ms | speed-up | int8 _int_mm ms '
             '(speed-up) | int8 oneDNN ms (speed-up) | memory floor ms (float / floor) |',
             '|---|---|---|---|---|---|---|---|---|']

    def cell(entry):
        return f"{entry['ms']:.3f} ({entry['speedup']:.1f}x)" if entry else '-'
    for name, row in results['layers'].items():
        lines.append(f"| {name} | {row['float32']['ms']:.3f} | {row['binary']['ms']:.3f} | "
                     f"{row['binary']['speedup']:.1f}x | {row['int8']['ms']:.3f} | "
                     f"{row['int8']['speedup']:.1f}x | {cell(row.get('int8 _int_mm'))} | "
                     f"{cell(row.get('int8 oneDNN'))} | "
                     f"{cell(row.get('memory floor'))} |")
    grouped = {name: row for name, row in results['layers'].items()
               if 'binary, float32 convolution' in row}
    if grouped:
        lines += ['', '| grouped layer | float32 ms | binary ms (speed-up; route) | binary, '
                  'float32 convolution ms (speed-up) | int8 ms (speed-up; route) | int8, float32 '
                  'convolution ms (speed-up) | int8, oneDNN convolution ms (speed-up) | same '
                  'outputs |', '|---|---|---|---|---|---|---|---|']
        for name, row in grouped.items():
            routes = row.get('routes', {})
            lines.append(f"| {name} | {row['float32']['ms']:.3f} | {cell(row['binary'])[:-1]}; "
                         f"{routes.get('binary', '?')}) | "
                         f"{cell(row['binary, float32 convolution'])} | "
                         f"{cell(row['int8'])[:-1]}; {routes.get('int8', '?')}) | "
                         f"{cell(row['int8, float32 convolution'])} | "
                         f"{cell(row.get('int8, oneDNN convolution'))} | "
                         f"{'yes' if row['routes_same_outputs'] else 'NO'} |")
    lines += ['', '| model (batch 8) | float32 ms | fake-quantized ms | runtime ms | runtime '
              'speed-up | float32, BN folded: ms (runtime speed-up over it) | runtime, BN kept '
              '| runtime, depthwise on float32 convolutions (outputs) '
              '| runtime, integer layers not chained (outputs) '
              '| runtime without pairs | runtime, softmax unfused (outputs) '
              '| runtime, LayerNorm unfused (outputs) | runtime, int8 on _int_mm (outputs) '
              '| max output difference / max output | same argmax | layers on kernels | paper '
              '(theoretical) |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'
              '---|']
    def variant(row, name, same_key, note=''):
        """The cell of a runtime variant timed side by side: ms, speed-up, whether its outputs
        equal the default runtime's."""
        entry = row.get(name)
        if not entry:
            return '-'
        return (f"{entry['ms']:.1f} ms, {entry['speedup']:.2f}x ({note}"
                f"{'the same' if row[same_key] else 'DIFFERENT'})")
    for name, row in results['models'].items():
        agree = '-' if row['same_argmax'] is None else f"{100 * row['same_argmax']:.0f}%"
        unpaired = row.get('runtime without pairs')
        unpaired = (f"{unpaired['ms']:.1f} ms, {unpaired['speedup']:.2f}x" if unpaired
                    else '-')
        pairs = f", {row['binary_pairs']} binary pairs" if row.get('binary_pairs') else ''
        unfused = variant(row, 'runtime, softmax unfused', 'fused_softmax_changes_nothing')
        to_torch = row.get('layer_norm_rows_to_torch') or {}
        norms = variant(row, 'runtime, LayerNorm unfused', 'fused_layer_norm_changes_nothing',
                        f"fused: {min(to_torch['to_torch'])}-{max(to_torch['to_torch'])} of "
                        f"{to_torch['rows_per_call']} rows per call to torch; "
                        if to_torch.get('to_torch') else '')
        plain = variant(row, 'runtime, int8 on _int_mm', 'int_mm_same_outputs')
        if plain != '-':
            plain = (f"{plain[:-1]}; GEMMs of the default {row['gemms']}; "
                     f"{row['outputs_moved_1e-3']} of {row['outputs']} outputs more than 1e-3 "
                     "from the fake-quantized model's)")
        folded_float, kept = row.get('float32, BN folded'), row.get('runtime, BN kept')
        folded_float = (f"{folded_float['ms']:.1f} ({folded_float['ms'] / row['runtime']['ms']:.2f}"
                        f"x; {row['float_batch_norms_folded']} BNs)" if folded_float else '-')
        kept = (f"{kept['ms']:.1f} ms, {kept['speedup']:.2f}x ({row['batch_norms_folded']} BNs "
                f"kept; outputs within {row['bn_kept_max_difference']:.2g})" if kept else '-')
        convs = variant(row, 'runtime, depthwise on float32 convolutions',
                        'depthwise_kernel_changes_nothing')
        unchained = variant(row, 'runtime, integer layers not chained', 'chains_change_nothing',
                            f"{row.get('chains')} chains; ")
        lines.append(f"| {name} | {row['float32']['ms']:.1f} | {row['fake-quantized']['ms']:.1f} "
                     f"| {row['runtime']['ms']:.1f} | {row['runtime']['speedup']:.2f}x | "
                     f"{folded_float} | {kept} | {convs} | {unchained} | {unpaired} | {unfused} "
                     f"| {norms} | {plain} | "
                     f"{row['max_abs_difference']:.3g} / {row['max_abs_output']:.3g} | {agree} | "
                     f"{row['layers']}{pairs} | {row['paper']} |")
    for name, row in results['models'].items():
        if row.get('breakdown_ms'):
            total = sum(row['breakdown_ms'].values())
            lines += ['', f'{name}, runtime profiled (ms per forward, share of the listed total):',
                      '', '| part | ms | share |', '|---|---|---|']
            lines += [f'| {part} | {ms:.2f} | {100 * ms / total:.0f}% |'
                      for part, ms in row['breakdown_ms'].items() if ms >= 0.005]
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='3 repetitions, batch 1 only')
    parser.add_argument('--reps', type=int, default=30)
    parser.add_argument('--models', nargs='*', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--out', type=Path, default=OUT)
    parser.add_argument('--force', action='store_true', help='overwrite an existing results file')
    args = parser.parse_args()
    if args.out.exists() and not args.force and not args.quick:
        raise SystemExit(f'{args.out} exists; pass --force to replace it')
    reps, warmup, batches = (3, 1, (1, )) if args.quick else (args.reps, 3, (1, 8))
    ops = lowbit_ops()
    results = dict(
        command='python benchmarks/lowbit_inference.py ' + ' '.join(sys.argv[1:]),
        device=cpu_description(),
        torch=torch.__version__, avx512_popcount=bool(ops and ops.has_avx512_popcount()),
        reps=reps, layers=layer_rows(batches, reps, warmup), models={})
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            print(f'{name}: export, runtime, timing ...', flush=True)
            results['models'][name] = model_row(name, max(3, reps // 3), 2 if args.quick else 3,
                                                Path(folder))
    text = table(results)
    print(text)
    if args.quick:
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, json.dumps(results, indent=2) + '\n')
    atomic_write(args.out.with_suffix('.md'), text + '\n')
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
