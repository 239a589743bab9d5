"""MergedGroupsOptimWrapperConstructor: mmengine's default constructor with the parameter groups
of equal options merged, and resuming from a state saved with one group per parameter."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper
from torch import nn

from mmext.engine import MergedGroupsOptimWrapperConstructor
from mmext.quant import QLinear

PARAMWISE = dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                 custom_keys={'backbone': dict(lr_mult=0.1)})


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.head = QLinear(4, 5, w_quantizer=dict(type='LSQQuantizer', bits=4),
                            a_quantizer=dict(type='LSQPlusQuantizer', bits=4))
        self.norm = nn.LayerNorm(5)

    def forward(self, x):
        return self.norm(self.head(self.backbone(x).mean((2, 3))))


def _wrapper(constructor, model, **optimizer):
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05, **optimizer))
    return constructor(cfg, PARAMWISE)(model)


def _options(wrapper, model):
    """{parameter name: its group's options}"""
    of = {id(p): {k: v for k, v in g.items() if k != 'params'}
          for g in wrapper.optimizer.param_groups for p in g['params']}
    return {name: of[id(p)] for name, p in model.named_parameters()}


def _steps(wrappers_and_models, n, seed):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n):
        grads = None
        for wrapper, model in wrappers_and_models:
            params = list(model.parameters())
            if grads is None:
                grads = [torch.randn(p.shape, generator=generator) for p in params]
            for p, g in zip(params, grads):
                p.grad = g.clone()
            wrapper.step()


def test_merged_groups_give_every_parameter_the_default_constructors_options_and_updates():
    model = Tiny()
    twin = copy.deepcopy(model)
    default = _wrapper(DefaultOptimWrapperConstructor, model)
    merged = _wrapper(MergedGroupsOptimWrapperConstructor, twin)
    assert len(default.optimizer.param_groups) == len(list(model.parameters())) == 11
    # the conv weight (lr 0.1x), the backbone's biases and norm (lr 0.1x, no decay), the
    # head's weight and step sizes, its bias and the LayerNorm (no decay), by mmengine's
    # custom_keys / bias_decay_mult / norm_decay_mult rules
    distinct = {tuple(sorted(o.items())) for o in _options(default, model).values()}
    assert len(merged.optimizer.param_groups) == len(distinct) < 11
    assert _options(merged, twin) == _options(default, model)
    _steps([(default, model), (merged, twin)], 3, seed=0)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(a, b), name


def test_a_state_saved_with_one_group_per_parameter_resumes_merged():
    model = Tiny()
    default = _wrapper(DefaultOptimWrapperConstructor, model)
    _steps([(default, model)], 2, seed=1)
    saved = copy.deepcopy(default.state_dict())

    twin = copy.deepcopy(model)
    merged = _wrapper(MergedGroupsOptimWrapperConstructor, twin, foreach=False)
    groups = len(merged.optimizer.param_groups)
    merged.load_state_dict(saved)
    assert len(merged.optimizer.param_groups) == groups
    # the saved options, but this run's implementation switches
    assert all(g['foreach'] is False for g in merged.optimizer.param_groups)
    _steps([(default, model), (merged, twin)], 2, seed=2)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(a, b), name

    # its own state loads as it is
    again = _wrapper(MergedGroupsOptimWrapperConstructor, copy.deepcopy(twin), foreach=False)
    again.load_state_dict(copy.deepcopy(merged.state_dict()))
    assert again.optimizer.state_dict()['state'].keys() == merged.optimizer.state_dict()[
        'state'].keys()

    other = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    other_wrapper = _wrapper(DefaultOptimWrapperConstructor, other)
    with pytest.raises(ValueError, match='another model or other paramwise_cfg'):
        _wrapper(MergedGroupsOptimWrapperConstructor, copy.deepcopy(twin)).load_state_dict(
            other_wrapper.state_dict())


def test_the_detection_and_bivit_configs_build_merged_fused_groups():
    for path in ('configs/demo/conditional-detr_mobilenetv2-s16_w4a4_fashion-scenes.py',
                 'configs/qdetr/r50_4bit.py', 'configs/bivit/bivit_deit-tiny_4xb256-300e_in1k.py'):
        cfg = Config.fromfile(path).optim_wrapper
        model = Tiny()
        wrapper = build_optim_wrapper(model, copy.deepcopy(cfg))
        assert isinstance(wrapper.optimizer, torch.optim.AdamW), path
        assert len(wrapper.optimizer.param_groups) < len(list(model.parameters())), path
        assert all(g['fused'] for g in wrapper.optimizer.param_groups), path
