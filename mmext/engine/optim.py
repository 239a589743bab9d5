"""One optimizer per sub-module: an ``OptimWrapperDict`` from a config.

mmengine builds an ``OptimWrapperDict`` only through a constructor. This one takes one
optimizer-wrapper config per attribute of the model::

    optim_wrapper = dict(
        constructor='mmext.MultiOptimWrapperConstructor',
        parent=dict(optimizer=dict(type='SGD', lr=0.025, momentum=0.9)),
        arch=dict(optimizer=dict(type='Adam', lr=3e-4), paramwise_cfg=dict(...)))

and builds each with mmengine's ``DefaultOptimWrapperConstructor`` over
``model.<name>.parameters()``. Parameter schedulers then take a dict keyed by the same names.
"""
from __future__ import annotations

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from torch import nn

from mmext.registry import OPTIM_WRAPPER_CONSTRUCTORS


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
