"""NumericalGuardHook stops a real run at the first NaN loss or broken quantizer step, names
the iteration and the culprit, and saves no checkpoint of the broken state."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmext.engine import NumericalGuardHook
from mmext.quant import QLinear


class Batches(Dataset):
    """Item i is a (4,) vector; item ``nan_at`` holds a NaN."""

    def __init__(self, nan_at: int | None = None):
        self.nan_at = nan_at

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.full((4, ), float(i + 1))
        if i == self.nan_at:
            x[0] = float('nan')
        return dict(inputs=x)


class Net(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = QLinear(4, 2, w_quantizer=dict(type='LSQQuantizer', bits=4),
                          a_quantizer=dict(type='LSQPlusQuantizer', bits=4))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        return {'loss_fit': out.square().mean()} if mode == 'loss' else out


def _runner(tmp_path, nan_at=None, lr=1e-3):
    return Runner(
        model=Net(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=Batches(nan_at), batch_size=1, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=6), optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=lr)),
        custom_hooks=[dict(type='mmext.NumericalGuardHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        randomness=dict(seed=0), default_scope='mmext')


def test_a_nan_loss_stops_the_run_at_its_iteration_before_the_checkpoint(tmp_path):
    with pytest.raises(FloatingPointError, match=r'iteration 3: loss(_fit)? is nan.*resume'):
        _runner(tmp_path, nan_at=2).train()
    assert (tmp_path / 'iter_2.pth').is_file() and not (tmp_path / 'iter_3.pth').exists()


def test_a_step_driven_below_zero_is_named(tmp_path):
    # a huge learning rate pushes a step through zero within a few iterations
    with pytest.raises(FloatingPointError, match=r'iteration \d: the step of fc\.[wa]_quantizer '
                       r'\(element 0 of 1\) is .*must stay positive.*lr_mult'):
        _runner(tmp_path, lr=1e4).train()


def test_healthy_runs_pass_and_bad_values_are_found_by_hand():
    net = Net()
    net.fc(torch.ones(1, 4))                        # initialise the steps
    NumericalGuardHook.check_quantizer_steps(net, 1)
    net.fc.a_quantizer.scale.data.fill_(float('inf'))
    with pytest.raises(FloatingPointError, match='fc.a_quantizer .* is inf'):
        NumericalGuardHook.check_quantizer_steps(net, 7)
    with pytest.raises(ValueError, match='interval must be at least 1'):
        NumericalGuardHook(interval=0)
