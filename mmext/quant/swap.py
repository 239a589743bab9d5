"""Config-driven module swap: turn the Linear, Conv2d and attention modules of a built model
into quantized twins by module-name patterns, copying the float weights in.

Converted: ``nn.Linear`` -> QLinear, ``nn.Conv2d`` -> QConv2d (subclasses such as mmcv's
included), ``nn.MultiheadAttention`` (mmdet's DETR) -> QMultiheadAttention, mmdet's
``ConditionalAttention`` -> QConditionalAttention, Swin's ``WindowMSA`` (mmpretrain's, mmseg's,
mmdet's) -> QWindowMSA, and mmpretrain's ``MultiheadAttention`` gets a QuantizedSDPA (the qkv / proj Linear
layers of all of these are converted as Linear layers).

    swap = QUANTIZERS.build(dict(type='ModuleSwap', w_bits=4, a_bits=4, attn_bits=8,
                                 skip=['backbone.conv1', 'bbox_head.*'],
                                 overrides=[dict(pattern='neck.*', w_bits=8, a_bits=8)]))
    model = swap(model)          # returns the same model object, converted in place
    swap.report                  # [dict(name, type, action, w_bits, a_bits), ...]

Patterns are shell-style globs on the dotted module names (``fnmatch``). A pattern that matches
no module, or a bit width outside {1..8, 32}, is refused with a message that says why.
"""
from __future__ import annotations

import importlib
import sys
from fnmatch import fnmatchcase

from mmengine.logging import print_log
from torch import nn

from mmext.registry import QUANTIZERS

from .attention import QMultiheadAttention, QuantizedSDPA
from .calibration import register_absent_state_report, step_quantizers, weight_owners
from .layers import (
    QConv2d,
    QLinear,
    activation_quantizer_cfg,
    check_granularity,
    weight_quantizer_cfg,
)
from .observers import CalibrationSpec
from .quantizers import FULL_PRECISION, _StepQuantizer

SWAPPABLE = {nn.Linear: QLinear, nn.Conv2d: QConv2d, nn.MultiheadAttention: QMultiheadAttention}
ALLOWED_BITS = tuple(range(1, 9)) + (FULL_PRECISION, )


def _computes_attention_by_attribute(module: nn.Module) -> bool:
    """mmpretrain's ``MultiheadAttention``: ``num_heads`` and a plain-function attribute
    ``scaled_dot_product_attention`` through which it computes attention."""
    fn = module.__dict__.get('scaled_dot_product_attention')
    return callable(fn) and hasattr(module, 'num_heads')


# Attention that multiplies in its own forward, and the quantized twin that replaces it:
# (module of the class, class name, module of the twin, twin name). Looked up only if the
# library's module is loaded (a model cannot hold one otherwise), so no import is forced.
METHOD_ATTENTIONS = (
    ('mmdet.models.layers.transformer.utils', 'ConditionalAttention',
     'mmext.quant.detr_attention', 'QConditionalAttention'),
    ('mmpretrain.models.utils.attention', 'WindowMSA', 'mmext.quant.swin_attention',
     'QWindowMSA'),
    ('mmseg.models.backbones.swin', 'WindowMSA', 'mmext.quant.swin_attention', 'QWindowMSA'),
    ('mmdet.models.backbones.swin', 'WindowMSA', 'mmext.quant.swin_attention', 'QWindowMSA'),
)


def _method_attention_twin(module: nn.Module) -> str | None:
    """'module:Twin' of the quantized twin of an attention listed in METHOD_ATTENTIONS."""
    if isinstance(getattr(module, 'attention', None), QuantizedSDPA):
        return None  # already quantized
    for source, name, twin_module, twin in METHOD_ATTENTIONS:
        library = sys.modules.get(source)
        if library is not None and type(module) is getattr(library, name, None):
            return f'{twin_module}:{twin}'
    return None


def _attention_kind(module: nn.Module) -> str | None:
    """'mmpretrain' for attention computed through an attribute, 'module:Twin' for attention
    replaced by a quantized twin, None otherwise."""
    if _computes_attention_by_attribute(module):
        return 'mmpretrain'
    return _method_attention_twin(module)


def _check_bits(bits, where: str) -> int:
    if bits not in ALLOWED_BITS:
        raise ValueError(f'{where}: bit width {bits!r} is impossible; use 1..8, or 32 to keep '
                         'the layer in full precision')
    return bits


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition('.')
    setattr(model.get_submodule(parent_name), child, new)


@QUANTIZERS.register_module()
class ModuleSwap:
    """Replace the Linear, Conv2d and attention modules of a built model (the list is in this
    module's docstring) by quantized twins.

    Args:
        w_bits, a_bits: default bit widths of weights and layer inputs (1..8 or 32).
        attn_bits: bit width of attention's q, k, v and probabilities (default: ``a_bits``);
            the paper notation W-A-Attn, e.g. 4-4-8.
        skip: patterns of modules kept in full precision (the first and last layers, say).
            A pattern names modules, not subtrees: ``'head.*'`` (or ``'head*'``) keeps every
            layer of the head; for mmpretrain's attention ``'layers.0.attn'`` keeps its
            attention matmuls float and ``'layers.0.attn.*'`` its qkv / proj layers.
        overrides: ``dict(pattern=..., w_bits=..., a_bits=...)`` entries; the last matching
            entry wins for each bit it names.
        fused: run the LSQ / LSQ+ fake quantization as one pass forward and one backward
            (the low-bit extension's on float32 CPU tensors, the eager values; elsewhere
            ``torch.compile``, after a compile of seconds per layout at the start; see
            :func:`mmext.quant.quantizers.fake_quantize`).
        integer_gemm: compute the forward product of qualifying 2..8-bit Linear and 1 x 1
            Conv2d layers (an LSQ weight, a per-tensor LSQ+ input) exactly on their integer
            levels (a bfloat16 GEMM on CPUs with bfloat16 matrix units), the same values up to
            float rounding, the same gradients (:mod:`mmext.quant.integer_qat`); faster CPU
            training.
        w_granularity: LSQ weight steps per output 'channel' (default) or per 'tensor'.
        a_granularity: LSQ+ input steps and zero points of Linear / Conv2d layers per 'tensor'
            (default) or per input 'channel' (the last dim of a Linear input, dim 1 of a
            convolution's). Attention's q, k, v and P are always quantized per head.
        calibration: how the 2..8-bit steps start. None: the data-free LSQ / LSQ+
            initialisation in the first forward passes (``2 mean|x| / sqrt(Qp)``).
            ``dict(method='mse' | 'percentile' | 'minmax', batches=16, weight_method=None,
            percentile=99.99, bins=2048, grid=100)``: calibration
            (:mod:`mmext.quant.calibration`) sets them before the first forward, the weights by
            ``weight_method`` (default: ``method``) and the inputs over ``batches`` training
            batches; add ``custom_hooks=[dict(type='mmext.QuantCalibrationHook')]`` to the
            config so that the runner does it.

    Loading a checkpoint into the converted model prints one line for the quantizer state it
    lacks (a float checkpoint's) instead of listing each missing key.
    """

    def __init__(self, w_bits: int = 4, a_bits: int = 4, attn_bits: int | None = None,
                 skip: list[str] = (), overrides: list[dict] = (), fused: bool = False,
                 integer_gemm: bool = False, w_granularity: str = 'channel',
                 a_granularity: str = 'tensor', calibration: dict | None = None):
        self.w_bits = _check_bits(w_bits, 'ModuleSwap w_bits')
        self.a_bits = _check_bits(a_bits, 'ModuleSwap a_bits')
        self.attn_bits = _check_bits(a_bits if attn_bits is None else attn_bits,
                                     'ModuleSwap attn_bits')
        self.skip = list(skip)
        self.overrides = []
        for i, rule in enumerate(overrides):
            rule = dict(rule)
            if 'pattern' not in rule:
                raise ValueError(f'ModuleSwap overrides[{i}] has no pattern: {rule}')
            unknown = set(rule) - {'pattern', 'w_bits', 'a_bits', 'attn_bits'}
            if unknown:
                raise ValueError(f'ModuleSwap overrides[{i}] has unknown keys {sorted(unknown)}; '
                                 'it takes pattern, w_bits, a_bits and attn_bits')
            for key in ('w_bits', 'a_bits', 'attn_bits'):
                if key in rule:
                    _check_bits(rule[key], f'ModuleSwap overrides[{i}] {key}')
            self.overrides.append(rule)
        self.fused = bool(fused)
        self.integer_gemm = bool(integer_gemm)
        check_granularity(w_granularity, 'ModuleSwap w_granularity')
        check_granularity(a_granularity, 'ModuleSwap a_granularity')
        self.w_granularity, self.a_granularity = w_granularity, a_granularity
        self.calibration = self._calibration_specs(calibration)
        self.report: list[dict] = []

    @staticmethod
    def _calibration_specs(cfg: dict | None) -> dict[str, CalibrationSpec] | None:
        """``{'weight': spec, 'activation': spec}`` from the ``calibration`` config."""
        if cfg is None:
            return None
        if not isinstance(cfg, dict):
            raise TypeError(f'ModuleSwap calibration must be a dict or None, got {cfg!r}')
        cfg = dict(cfg)
        weight_method = cfg.pop('weight_method', None) or cfg.get('method', 'mse')
        activation = CalibrationSpec.build(cfg)
        try:
            weight = CalibrationSpec.build(dict(cfg, method=weight_method))
        except ValueError as error:
            raise ValueError(f'ModuleSwap calibration weight_method: {error}') from None
        return dict(weight=weight, activation=activation)

    def _bits_for(self, name: str) -> dict:
        bits = dict(w_bits=self.w_bits, a_bits=self.a_bits, attn_bits=self.attn_bits)
        for rule in self.overrides:
            if fnmatchcase(name, rule['pattern']):
                bits.update({k: v for k, v in rule.items() if k != 'pattern'})
        return bits

    @staticmethod
    def _targets(model: nn.Module) -> list[tuple[str, nn.Module]]:
        """The float Linear / Conv2d / MultiheadAttention modules (subclasses such as mmcv's
        ``Linear`` included), minus those inside an attention module (its ``out_proj``, which
        the attention's own swap handles) and those already quantized."""
        targets, attentions = [], []
        for name, module in model.named_modules():
            if isinstance(module, tuple(SWAPPABLE.values())) or \
                    any(name.startswith(a + '.') for a in attentions):
                continue
            if _attention_kind(module):
                targets.append((name, module))  # its Linear children are targets too
                continue
            kind = next((k for k in SWAPPABLE if isinstance(module, k)), None)
            if kind is nn.MultiheadAttention:
                attentions.append(name)
            if kind is not None:
                targets.append((name, module))
        return targets

    def _check_patterns(self, names: list[str]) -> None:
        for pattern in self.skip + [rule['pattern'] for rule in self.overrides]:
            if not any(fnmatchcase(name, pattern) for name in names):
                examples = ', '.join(names[:6]) + (', ...' if len(names) > 6 else '')
                raise ValueError(f'ModuleSwap pattern {pattern!r} matches no Linear, Conv2d or '
                                 f'attention module; the model has e.g. {examples}')

    def __call__(self, model: nn.Module) -> nn.Module:
        targets = self._targets(model)
        self._check_patterns([name for name, _ in targets])
        existing = {id(q) for q in step_quantizers(model).values()}
        self.report = []
        for name, module in targets:
            bits = self._bits_for(name)
            if any(fnmatchcase(name, pattern) for pattern in self.skip):
                action, bits = 'skipped', dict.fromkeys(bits, FULL_PRECISION)
            elif all(b == FULL_PRECISION for b in bits.values()):
                action = 'kept'
            else:
                action = 'quantized'
            attention = _attention_kind(module)
            if attention:
                kind = type(module).__module__.split('.')[0] + '.' + type(module).__name__
                bits = dict(w_bits=None, a_bits=None, attn_bits=bits['attn_bits'])
                if action == 'quantized' and bits['attn_bits'] != FULL_PRECISION:
                    self._quantize_attention(model, name, module, attention, bits['attn_bits'])
                else:
                    action = 'kept' if action == 'quantized' else action
            else:
                kind_cls = next(k for k in SWAPPABLE if isinstance(module, k))
                kind = kind_cls.__name__
                if action == 'quantized':
                    if kind_cls is nn.MultiheadAttention:
                        quantized = QMultiheadAttention.from_float(
                            module, **bits, w_granularity=self.w_granularity,
                            a_granularity=self.a_granularity)
                    else:
                        quantized = SWAPPABLE[kind_cls].from_float(
                            module,
                            w_quantizer=weight_quantizer_cfg(bits['w_bits'], self.w_granularity),
                            a_quantizer=activation_quantizer_cfg(bits['a_bits'],
                                                                 self.a_granularity))
                    _replace(model, name, quantized)
                if kind_cls is not nn.MultiheadAttention:
                    bits['attn_bits'] = None
            self.report.append(dict(name=name, type=kind, action=action, **bits))
        for module in model.modules():
            if isinstance(module, _StepQuantizer):
                module.fused = self.fused
            if isinstance(module, (QLinear, QConv2d)):
                module.integer_gemm = self.integer_gemm
        owners = weight_owners(model)
        for name, quantizer in step_quantizers(model).items():
            if id(quantizer) not in existing:
                quantizer.qualified_name = name
                if self.calibration is not None:
                    role = 'weight' if id(quantizer) in owners else 'activation'
                    quantizer.calibration = self.calibration[role]
        register_absent_state_report(model)
        print_log(self.format_report(), logger='current')
        return model

    @staticmethod
    def _quantize_attention(model: nn.Module, name: str, module: nn.Module, kind: str,
                            bits: int) -> None:
        if kind == 'mmpretrain':
            module.scaled_dot_product_attention = QuantizedSDPA.from_bits(module.num_heads, bits)
        else:
            twin_module, twin = kind.split(':')
            twin_cls = getattr(importlib.import_module(twin_module), twin)
            _replace(model, name, twin_cls.from_float(module, bits))

    def format_report(self) -> str:
        """The report as a text table: module, type, action, W, A and attention bits."""
        width = max([len(r['name']) for r in self.report] + [6])
        lines = [f"{'module':<{width}}  {'type':<29}  {'action':<9}  W   A   Attn"]
        lines += [f"{r['name']:<{width}}  {r['type']:<29}  {r['action']:<9}  "
                  f"{r['w_bits'] or '-':<2}  {r['a_bits'] or '-':<2}  {r['attn_bits'] or '-'}"
                  for r in self.report]
        done = sum(r['action'] == 'quantized' for r in self.report)
        lines.append(f'{done} of {len(self.report)} swappable modules quantized')
        return '\n'.join(lines)


def twin_attention(model: nn.Module, bits: int = FULL_PRECISION, pattern: str = '*') -> list[str]:
    """Replace every attention module whose name matches ``pattern`` by its quantized twin at
    ``bits`` (at 32 bits: the same float computation, now through a :class:`QuantizedSDPA`
    child where recorders can attach, e.g. in a real-valued teacher). Linear and Conv2d layers
    are left alone. Returns the converted names."""
    _check_bits(bits, 'twin_attention bits')
    converted = []
    for name, module in ModuleSwap._targets(model):
        if not fnmatchcase(name, pattern):
            continue
        kind = _attention_kind(module)
        if kind is not None:
            ModuleSwap._quantize_attention(model, name, module, kind, bits)
        elif isinstance(module, nn.MultiheadAttention):
            _replace(model, name, QMultiheadAttention.from_float(module, attn_bits=bits))
        else:
            continue
        converted.append(name)
    return converted
