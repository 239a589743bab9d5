"""Config-driven module swap: turn the Linear / Conv2d layers of a built model into QLinear /
QConv2d by module-name patterns, copying the float weights in.

    swap = QUANTIZERS.build(dict(type='ModuleSwap', w_bits=4, a_bits=4,
                                 skip=['backbone.conv1', 'bbox_head.*'],
                                 overrides=[dict(pattern='neck.*', w_bits=8, a_bits=8)]))
    model = swap(model)          # returns the same model object, converted in place
    swap.report                  # [dict(name, type, action, w_bits, a_bits), ...]

Patterns are shell-style globs on the dotted module names (``fnmatch``). A pattern that matches
no module, or a bit width outside {1..8, 32}, is refused with a message that says why.
"""
from __future__ import annotations

from fnmatch import fnmatchcase

from mmengine.logging import print_log
from torch import nn

from mmext.registry import QUANTIZERS

from .layers import QConv2d, QLinear
from .quantizers import FULL_PRECISION

SWAPPABLE = {nn.Linear: QLinear, nn.Conv2d: QConv2d}
ALLOWED_BITS = tuple(range(1, 9)) + (FULL_PRECISION, )


def weight_quantizer_cfg(bits: int) -> dict | None:
    """The default weight quantizer for a bit width: float, binary (mean|W| scale) or LSQ."""
    if bits == FULL_PRECISION:
        return None
    if bits == 1:
        return dict(type='WeightBinarizer')
    return dict(type='LSQQuantizer', bits=bits, per_channel=True)


def activation_quantizer_cfg(bits: int) -> dict | None:
    """The default input quantizer for a bit width: float, sign (ApproxSign STE) or LSQ+."""
    if bits == FULL_PRECISION:
        return None
    if bits == 1:
        return dict(type='SignBinarizer', ste='approx_sign')
    return dict(type='LSQPlusQuantizer', bits=bits)


def _check_bits(bits, where: str) -> int:
    if bits not in ALLOWED_BITS:
        raise ValueError(f'{where}: bit width {bits!r} is impossible; use 1..8, or 32 to keep '
                         'the layer in full precision')
    return bits


@QUANTIZERS.register_module()
class ModuleSwap:
    """Replace ``nn.Linear`` / ``nn.Conv2d`` modules of a built model by quantized twins.

    Args:
        w_bits, a_bits: default bit widths of weights and layer inputs (1..8 or 32).
        skip: patterns of modules kept in full precision (the first and last layers, say).
        overrides: ``dict(pattern=..., w_bits=..., a_bits=...)`` entries; the last matching
            entry wins for each bit it names.
    """

    def __init__(self, w_bits: int = 4, a_bits: int = 4, skip: list[str] = (),
                 overrides: list[dict] = ()):
        self.w_bits = _check_bits(w_bits, 'ModuleSwap w_bits')
        self.a_bits = _check_bits(a_bits, 'ModuleSwap a_bits')
        self.skip = list(skip)
        self.overrides = []
        for i, rule in enumerate(overrides):
            rule = dict(rule)
            if 'pattern' not in rule:
                raise ValueError(f'ModuleSwap overrides[{i}] has no pattern: {rule}')
            unknown = set(rule) - {'pattern', 'w_bits', 'a_bits'}
            if unknown:
                raise ValueError(f'ModuleSwap overrides[{i}] has unknown keys {sorted(unknown)}; '
                                 'it takes pattern, w_bits and a_bits')
            for key in ('w_bits', 'a_bits'):
                if key in rule:
                    _check_bits(rule[key], f'ModuleSwap overrides[{i}] {key}')
            self.overrides.append(rule)
        self.report: list[dict] = []

    def _bits_for(self, name: str) -> tuple[int, int]:
        w_bits, a_bits = self.w_bits, self.a_bits
        for rule in self.overrides:
            if fnmatchcase(name, rule['pattern']):
                w_bits, a_bits = rule.get('w_bits', w_bits), rule.get('a_bits', a_bits)
        return w_bits, a_bits

    def _check_patterns(self, names: list[str]) -> None:
        for pattern in self.skip + [rule['pattern'] for rule in self.overrides]:
            if not any(fnmatchcase(name, pattern) for name in names):
                examples = ', '.join(names[:6]) + (', ...' if len(names) > 6 else '')
                raise ValueError(f'ModuleSwap pattern {pattern!r} matches no Linear or Conv2d '
                                 f'module; the model has e.g. {examples}')

    def __call__(self, model: nn.Module) -> nn.Module:
        targets = [(name, module) for name, module in model.named_modules()
                   if type(module) in SWAPPABLE]
        self._check_patterns([name for name, _ in targets])
        self.report = []
        for name, module in targets:
            kind = type(module).__name__
            if any(fnmatchcase(name, pattern) for pattern in self.skip):
                self.report.append(dict(name=name, type=kind, action='skipped',
                                        w_bits=FULL_PRECISION, a_bits=FULL_PRECISION))
                continue
            w_bits, a_bits = self._bits_for(name)
            if w_bits == a_bits == FULL_PRECISION:
                action = 'kept'
            else:
                quantized = SWAPPABLE[type(module)].from_float(
                    module, w_quantizer=weight_quantizer_cfg(w_bits),
                    a_quantizer=activation_quantizer_cfg(a_bits))
                parent_name, _, child = name.rpartition('.')
                setattr(model.get_submodule(parent_name), child, quantized)
                action = 'quantized'
            self.report.append(dict(name=name, type=kind, action=action, w_bits=w_bits,
                                    a_bits=a_bits))
        print_log(self.format_report(), logger='current')
        return model

    def format_report(self) -> str:
        """The report as a text table: module, type, action, W bits, A bits."""
        width = max([len(r['name']) for r in self.report] + [6])
        lines = [f"{'module':<{width}}  {'type':<6}  {'action':<9}  W   A"]
        lines += [f"{r['name']:<{width}}  {r['type']:<6}  {r['action']:<9}  {r['w_bits']:<2}  "
                  f"{r['a_bits']}" for r in self.report]
        done = sum(r['action'] == 'quantized' for r in self.report)
        lines.append(f'{done} of {len(self.report)} Linear/Conv2d modules quantized')
        return '\n'.join(lines)
