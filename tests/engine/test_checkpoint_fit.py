"""CheckpointFitHook's rule: another architecture is refused, a fine-tuned head is not."""
import torch
from torch import nn

from mmext.engine.checkpoint_fit import checkpoint_misfit


def _state(num_classes: int) -> dict:
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(10)], nn.Linear(8, num_classes))
    return model.state_dict()


def test_a_head_for_another_class_count_fits():
    assert checkpoint_misfit(_state(10), _state(80)) is None   # 2 of 22 tensors differ


def test_dataparallel_prefixes_are_dropped_before_comparing():
    prefixed = {f'module.{k}': v for k, v in _state(10).items()}
    assert checkpoint_misfit(_state(10), prefixed) is None


def test_another_architecture_is_named():
    other = nn.Sequential(*[nn.Linear(8, 16) for _ in range(11)]).state_dict()
    problem = checkpoint_misfit(_state(10), other)
    assert problem is not None and problem.startswith('22 of 22 tensors differ in shape')
    assert '0.weight: (16, 8) in the checkpoint, (8, 8) in the model' in problem
    assert 'no parameter name in common' in checkpoint_misfit(
        _state(10), {'backbone.x': torch.ones(1)})


def test_a_wrapper_prefix_is_matched():
    # a model holding the checkpoint's network under a prefix (and mapping names on load)
    wrapped = {f'classifier.{k}': v for k, v in _state(10).items()}
    assert checkpoint_misfit(wrapped, _state(10)) is None
    assert checkpoint_misfit(_state(10), wrapped) is None
    other = {f'classifier.{k}': v for k, v in
             nn.Sequential(*[nn.Linear(8, 16) for _ in range(11)]).state_dict().items()}
    assert checkpoint_misfit(other, _state(10)).startswith('22 of 22 tensors differ')
