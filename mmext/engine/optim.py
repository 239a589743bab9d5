"""Optimizer wrapper constructors.

:class:`MergedGroupsOptimWrapperConstructor` is mmengine's default constructor with the
parameter groups of equal options merged: ``paramwise_cfg`` makes one group per parameter, and
an optimizer step then pays for every group, which a quantized model (a step size and a zero
point per quantizer) multiplies::

    optim_wrapper = dict(
        constructor='mmext.MergedGroupsOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4, fused=True),
        paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=0.1))))

:class:`MultiOptimWrapperConstructor` builds one optimizer per sub-module (an
``OptimWrapperDict``, which mmengine builds only through a constructor). It takes one
optimizer-wrapper config per attribute of the model::

    optim_wrapper = dict(
        constructor='mmext.MultiOptimWrapperConstructor',
        parent=dict(optimizer=dict(type='SGD', lr=0.025, momentum=0.9)),
        arch=dict(optimizer=dict(type='Adam', lr=3e-4), paramwise_cfg=dict(...)))

and builds each with mmengine's ``DefaultOptimWrapperConstructor`` over
``model.<name>.parameters()``. Parameter schedulers then take a dict keyed by the same names.
"""
from __future__ import annotations

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict
from torch import nn

from mmext.registry import OPTIM_WRAPPER_CONSTRUCTORS


def merge_param_groups(groups: list[dict]) -> list[dict]:
    """Groups with equal options (every key but ``'params'``) merged into one, in the order of
    their first appearance, their parameters in their order."""
    merged: list[dict] = []
    for group in groups:
        options = {k: v for k, v in group.items() if k != 'params'}
        for target in merged:
            if {k: v for k, v in target.items() if k != 'params'} == options:
                target['params'].extend(group['params'])
                break
        else:
            merged.append(dict(options, params=list(group['params'])))
    return merged


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MergedGroupsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's ``DefaultOptimWrapperConstructor`` with its parameter groups of equal
    options merged (the same updates: every option of every parameter is unchanged).

    With a ``paramwise_cfg`` the default constructor gives each parameter its own group, and
    torch's optimizers run their multi-tensor or fused update once per group: 649 groups for
    the 4-bit demo DETR (639 trainable parameters: the float model's 210 and 429 quantizer
    steps and zero points). Merged,
    the same rules give a handful of groups, and ``fused=True`` (AdamW, Adam, SGD) updates each
    in one kernel.

    An optimizer state saved with one group per parameter (a checkpoint of the default
    constructor, same model and rules) is converted when loaded, so such a run resumes; the
    saved options are kept, but for the implementation switches (``fused``, ``foreach``,
    ``capturable``, ``differentiable``), which stay this run's.
    """

    def add_params(self, params: list[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: int | float | None = None) -> None:
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix == '':  # the top call; mmengine's recursion passes each child's prefix
            self._unmerged = [p for group in params for p in group['params']]
            params[:] = merge_param_groups(params)
            print_log(f'{len(self._unmerged)} parameters in {len(params)} groups of equal '
                      'options', logger='current')

    def __call__(self, model: nn.Module) -> OptimWrapper:
        self._unmerged = None
        wrapper = super().__call__(model)
        if self._unmerged is not None:
            wrapper.optimizer.register_load_state_dict_pre_hook(
                _UnmergedStateConverter(self._unmerged))
        return wrapper


IMPLEMENTATION_SWITCHES = ('foreach', 'fused', 'capturable', 'differentiable')


class _UnmergedStateConverter:
    """Load-state-dict pre-hook: an optimizer state saved with the parameters in ``unmerged``
    order (any grouping of that order: the default constructor's one group per parameter)
    becomes the merged optimizer's layout; a state already in it passes unchanged."""

    def __init__(self, unmerged: list[nn.Parameter]):
        self.unmerged = unmerged

    def __call__(self, optimizer, state_dict: dict) -> dict | None:
        saved = state_dict['param_groups']
        if len(saved) == len(optimizer.param_groups):
            return None
        saved_ids = [i for group in saved for i in group['params']]
        if len(saved_ids) != len(self.unmerged):
            raise ValueError(
                f'the optimizer state holds {len(saved_ids)} parameters in {len(saved)} '
                f'groups; this model has {len(self.unmerged)} in {len(optimizer.param_groups)} '
                'groups (MergedGroupsOptimWrapperConstructor): the checkpoint is of another '
                'model or other paramwise_cfg rules')
        saved_as = {}  # id(parameter) -> (its id in the saved state, its saved group)
        params = iter(self.unmerged)
        for group in saved:
            for saved_id in group['params']:
                saved_as[id(next(params))] = saved_id, group
        position = 0
        groups, state = [], {}
        for group in optimizer.param_groups:
            ids = []
            options = None
            for p in group['params']:
                saved_id, saved_group = saved_as[id(p)]
                mine = {k: v for k, v in saved_group.items()
                        if k != 'params' and k not in IMPLEMENTATION_SWITCHES}
                if options is None:
                    options = mine
                elif mine != options:
                    raise ValueError(
                        'the optimizer state saved one group per parameter, and parameters '
                        'merged into one group here had different options there '
                        f'({options} and {mine}); resume with the constructor it was saved '
                        "with: --cfg-options optim_wrapper.constructor="
                        "DefaultOptimWrapperConstructor")
                if saved_id in state_dict['state']:
                    state[position] = state_dict['state'][saved_id]
                ids.append(position)
                position += 1
            # the implementation switches (fused, foreach, ...) stay this run's
            switches = {k: group[k] for k in IMPLEMENTATION_SWITCHES if k in group}
            groups.append(dict(options or {}, **switches, params=ids))
        return dict(state_dict, state=state, param_groups=groups)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MultiOptimWrapperConstructor:
    """Build ``OptimWrapperDict(name=wrapper, ...)``, one wrapper per named sub-module.

    Args:
        optim_wrapper_cfg: ``{name: optim wrapper config}``; each ``name`` must be an attribute
            of the model holding an ``nn.Module`` or an ``nn.Parameter``. An attribute that is
            None (a part the model was built without) gets no optimizer.
        paramwise_cfg: must be None here; give ``paramwise_cfg`` inside each entry.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None):
        if paramwise_cfg:
            raise ValueError('MultiOptimWrapperConstructor: put paramwise_cfg inside each '
                             'sub-module entry, not at the top level')
        if not optim_wrapper_cfg:
            raise ValueError('MultiOptimWrapperConstructor needs one entry per sub-module, e.g. '
                             'parent=dict(optimizer=dict(type="SGD", lr=0.1))')
        self.constructors = {}
        for name, cfg in optim_wrapper_cfg.items():
            if not isinstance(cfg, dict) or 'optimizer' not in cfg:
                raise ValueError(f'optim_wrapper.{name} must be a dict with an "optimizer", got '
                                 f'{cfg!r}')
            cfg = dict(cfg)
            self.constructors[name] = DefaultOptimWrapperConstructor(
                cfg, cfg.pop('paramwise_cfg', None))

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = getattr(model, 'module', model)
        wrappers = {}
        for name, constructor in self.constructors.items():
            if hasattr(model, name) and getattr(model, name) is None:
                continue  # a part the model was built without (e.g. DCPNAS(use_parent=False))
            part = getattr(model, name, None)
            if isinstance(part, nn.Parameter):
                holder = nn.Module()
                holder.param = part
                part = holder
            if not isinstance(part, nn.Module):
                raise ValueError(f'optim_wrapper names {name!r}, but {type(model).__name__} has '
                                 f'no sub-module or parameter of that name')
            wrappers[name] = constructor(part)
        return OptimWrapperDict(**wrappers)
