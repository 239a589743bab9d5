"""Calibration: the range estimators against hand computations, the model-level calibration,
the float-checkpoint report, and DDP against one process."""
import itertools
import logging
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.logging import MMLogger
from torch import nn

from mmext.quant import (
    CalibrationSpec,
    LSQPlusQuantizer,
    LSQQuantizer,
    ModuleSwap,
    calibrate_model,
    passthrough,
    pending_calibration,
    step_quantizers,
)
from mmext.quant.observers import ActivationObserver, mse_range, quantize_rows


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean(dim=(2, 3)))


def batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 8, 8, generator=g) * 2 for _ in range(n)]


# ----------------------------------------------------------------------------- range estimators
@pytest.mark.parametrize('bits, aciq', [(3, 3.89), (4, 5.03)])
def test_mse_step_of_a_laplace_distribution_is_the_known_optimum(bits, aciq):
    """Banner et al. (ACIQ) derive the MSE-optimal clipping of Laplace(0, 1) values on a
    uniform 2^b-level grid over [-a, a]: 3.89 at 3 bits, 5.03 at 4 bits. LSQ's grid
    [-2^(b-1), 2^(b-1) - 1] steps s, so its half-width is s (2^b - 1) / 2."""
    torch.manual_seed(0)
    x = torch.distributions.Laplace(0.0, 1.0).sample((200_000, ))
    q = LSQQuantizer(bits=bits, calibration=dict(method='mse', grid=400))
    q.calibrate_weight(x)
    half_width = q.scale.item() * (2 ** bits - 1) / 2
    assert half_width == pytest.approx(aciq, rel=0.03)


def test_mse_search_matches_a_brute_force_search_per_channel():
    rng = np.random.default_rng(0)
    w = rng.standard_t(df=3, size=(5, 300)).astype(np.float32)  # heavy tails
    q = LSQQuantizer(bits=4, num_channels=5, channel_dim=0,
                     calibration=dict(method='mse', grid=50))
    q.calibrate_weight(torch.from_numpy(w))
    for c in range(5):
        top = np.abs(w[c]).max()
        errors = []
        for a in np.arange(1, 51) / 50:
            s = np.float32(a * top / 7)
            errors.append(((np.clip(np.round(w[c] / s), -8, 7) * s - w[c]) ** 2).sum())
        best = (np.argmin(errors) + 1) / 50 * top / 7
        assert q.scale[c].item() == pytest.approx(best, rel=1e-5)


def test_asymmetric_mse_refines_each_end():
    """Values on [-1, 1] plus one outlier at -50: scaling both ends towards 0 shrinks the high
    end with the low one; moving each end on its own clips the outlier and keeps [-1, 1]."""
    x = torch.cat([torch.linspace(-1, 1, 100_000), torch.tensor([-50.0])])
    q = LSQPlusQuantizer(bits=4, calibration=dict(method='mse', grid=100))

    def search(asymmetric):
        lo, hi = mse_range(x[None], None, x.min()[None], x.max()[None], q.params_for_range,
                           q.qn, q.qp, grid=100, asymmetric=asymmetric)
        s, z = q.params_for_range(lo, hi)
        return lo.item(), hi.item(), ((quantize_rows(x, s, z, q.qn, q.qp) - x) ** 2).sum()

    lo, hi, error = search(asymmetric=True)
    _, joint_hi, joint_error = search(asymmetric=False)
    assert joint_hi < 0.5  # scaled down with the low end
    assert -2 < lo < -0.9 and 0.9 < hi <= 1  # the outlier clipped, the cluster kept
    assert error < joint_error / 3


def test_a_constant_input_gets_a_range_that_holds_zero():
    """A constant input (here 0.3) must not get a zero-width range: its step would be tiny and
    the step's gradient explode as soon as training moves the input."""
    q = LSQPlusQuantizer(bits=4, calibration=dict(method='mse'))
    lo, hi = torch.tensor([0.3]), torch.tensor([0.3])
    q.set_range(lo, hi)
    assert q.scale.item() == pytest.approx(0.3 / 15)
    x = torch.full((8, ), 0.3, requires_grad=True)
    out = q(x * 1.01)
    out.sum().backward()
    # 8 clipped inputs x (Qp - z = 15) x LSQ's gradient scale 1 / sqrt(7): about 45; a
    # zero-width range (step 1e-8, z = Qn - 0.3e8) would give about 1e8
    assert q.scale.grad.abs().item() == pytest.approx(8 * 15 / 7 ** 0.5, rel=1e-4)


def test_minmax_and_percentile_of_activations_match_numpy():
    rng = np.random.default_rng(1)
    chunks = [rng.normal(size=(64, 3, 400)).astype(np.float32) * (i + 1) for i in range(4)]
    values = np.concatenate([c.transpose(1, 0, 2).reshape(3, -1) for c in chunks], axis=1)
    for method in ('minmax', 'percentile'):
        spec = CalibrationSpec(method=method, percentile=99.0, bins=4096)
        observer = ActivationObserver(spec, channel_dim=1, num_groups=3)
        for c in chunks:
            observer.observe_range(torch.from_numpy(c))
        observer.sync_range()
        if observer.needs_histogram:
            for c in chunks:
                observer.observe_histogram(torch.from_numpy(c))
            observer.sync_histogram()
        q = LSQPlusQuantizer(bits=8, num_channels=3, channel_dim=1)
        lo, hi = observer.range(q.params_for_range, q.qn, q.qp, asymmetric=True)
        if method == 'minmax':
            np.testing.assert_array_equal(lo.numpy(), values.min(axis=1))
            np.testing.assert_array_equal(hi.numpy(), values.max(axis=1))
        else:  # from the histogram: within one bin of numpy's percentile
            width = (values.max(axis=1) - values.min(axis=1)) / 4096
            np.testing.assert_allclose(lo.numpy(), np.percentile(values, 1.0, axis=1),
                                       atol=width.max())
            np.testing.assert_allclose(hi.numpy(), np.percentile(values, 99.0, axis=1),
                                       atol=width.max())


def test_weight_percentile_is_numpys_and_sets_the_step():
    w = torch.randn(4, 1000)
    q = LSQQuantizer(bits=4, num_channels=4, channel_dim=0,
                     calibration=dict(method='percentile', percentile=99.0))
    q.calibrate_weight(w)
    lo, hi = np.percentile(w.numpy(), [1.0, 99.0], axis=1)
    expected = np.maximum(np.abs(lo), np.abs(hi)) / 7
    np.testing.assert_allclose(q.scale.detach().numpy(), expected, rtol=1e-5)
    assert q.initialized


def test_histogram_mse_is_close_to_the_exact_search():
    torch.manual_seed(0)
    x = torch.distributions.Laplace(0.0, 1.0).sample((100_000, ))
    q = LSQPlusQuantizer(bits=4, calibration=dict(method='mse'))
    exact = mse_range(x[None], None, x.min()[None], x.max()[None], q.params_for_range, q.qn,
                      q.qp)
    observer = ActivationObserver(q.calibration, None)
    observer.observe_range(x)
    observer.sync_range()
    observer.observe_histogram(x)
    approx = observer.range(q.params_for_range, q.qn, q.qp, asymmetric=True)

    def error(lo, hi):
        s, z = q.params_for_range(lo, hi)
        return ((quantize_rows(x, s, z, q.qn, q.qp) - x) ** 2).sum().item()

    full = error(x.min()[None], x.max()[None])
    assert error(*approx) == pytest.approx(error(*exact), rel=0.02)  # the landscape is flat
    assert error(*exact) < full / 3


def test_quantize_rows_is_the_quantizers_forward():
    q = LSQPlusQuantizer(bits=3)
    q.set_range(torch.tensor([-1.0]), torch.tensor([2.5]))
    x = torch.linspace(-2, 3, 50)
    torch.testing.assert_close(q(x).detach(), quantize_rows(x, q.scale.detach(),
                                                            q.zero_point.detach(), q.qn, q.qp))


@pytest.mark.parametrize('cfg, error', [
    (dict(method='kl'), 'unknown'), (dict(batches=0), 'batches'),
    (dict(percentile=30), 'percentile'), (dict(method='mse', steps=3), 'unknown keys')])
def test_bad_calibration_configs_are_refused(cfg, error):
    with pytest.raises(ValueError, match=error):
        ModuleSwap(w_bits=8, a_bits=8, calibration=cfg)


# ------------------------------------------------------------------------------ model-level
def ptq_error(model: nn.Module, float_model: nn.Module, data: list[torch.Tensor]) -> float:
    x = torch.cat(data)
    with torch.no_grad():
        ref = float_model(x)
        return ((model(x) - ref).norm() / ref.norm()).item()


def test_8_bit_ptq_is_nearly_lossless_and_beats_the_lsq_initialisation():
    torch.manual_seed(0)
    float_model = Tiny().eval()
    data = batches(8)
    errors = {}
    for method in ('minmax', 'percentile', 'mse', None):
        model = ModuleSwap(w_bits=8, a_bits=8, calibration=None if method is None else
                           dict(method=method, batches=4))(Tiny())
        model.load_state_dict(float_model.state_dict(), strict=False)
        model.eval()
        if method is not None:
            assert set(pending_calibration(model)) == {
                f'{layer}.{k}_quantizer' for layer in ('stem', 'body.0', 'body.2', 'head')
                for k in 'wa'}
            with pytest.raises(RuntimeError, match='QuantCalibrationHook'):
                model(data[0])
            report = calibrate_model(model, data)
            assert report['batches'] == 4  # the spec's, of the 8 given
            assert report['weights'] == {method: 4} and report['activations'] == {method: 4}
            assert not pending_calibration(model)
        errors[method] = ptq_error(model, float_model, data)
    assert max(errors['minmax'], errors['percentile'], errors['mse']) < 0.01
    assert errors['mse'] < errors[None] / 3  # LSQ's 2 mean|x| / sqrt(Qp) clips at 8 bits


def random_batches(n: int):
    """Batches drawn from the global random generator while calibration iterates them (as a
    training pipeline's augmentations are)."""
    for _ in range(n):
        yield torch.randn(4, 3, 8, 8) * 2


def test_calibration_leaves_modes_and_random_state_alone_and_seeds_its_batches():
    model = ModuleSwap(w_bits=4, a_bits=4, calibration=dict(method='mse', batches=2))(Tiny())
    model.train()
    model.stem.eval()  # a frozen part stays in eval mode
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    calibrate_model(model, random_batches(2))
    assert model.training and model.body.training and not model.stem.training
    torch.testing.assert_close(torch.rand(3), expected)  # the batches' draws were undone
    scale = model.body[0].a_quantizer.scale.detach().clone()
    calibrate_model(model, batches(2, seed=5))  # already calibrated: nothing changes
    torch.testing.assert_close(model.body[0].a_quantizer.scale.detach(), scale)
    calibrate_model(model, batches(2, seed=5), force=True)
    assert not torch.equal(model.body[0].a_quantizer.scale.detach(), scale)
    # with a seed, the batches drawn during calibration are the same whatever the state
    steps = []
    for state in (1, 2):
        torch.manual_seed(state)
        calibrate_model(model, random_batches(2), force=True, seed=7)
        steps.append(model.body[0].a_quantizer.scale.detach().clone())
    torch.testing.assert_close(steps[0], steps[1], rtol=0, atol=0)


def test_dead_channels_and_constant_inputs_keep_a_usable_step():
    q = LSQPlusQuantizer(bits=4, num_channels=3, channel_dim=-1)
    q.set_range(torch.tensor([-1.0, 0.0, 0.2]), torch.tensor([1.0, 0.0, 0.2]))
    # the dead channel (always 0) and the constant one get 1% of the widest range
    assert q.scale[1].item() == pytest.approx(0.02 / 15)
    assert q.scale[2].item() == pytest.approx(0.22 / 15)
    # zero is a level: exact zeros stay exact
    torch.testing.assert_close(q(torch.zeros(5, 3)).detach(), torch.zeros(5, 3))
    assert torch.equal(q.zero_point.detach(), q.zero_point.detach().round())


def test_quantizers_with_a_step_keep_quantizing_while_others_calibrate():
    """Stage 2 of Q-DETR: the stage-1 quantizers have trained steps; the new ones are calibrated
    on the inputs they will see in training, behind the quantized stage-1 layers."""
    model = ModuleSwap(w_bits=2, a_bits=2, calibration=dict(method='minmax', batches=2))(Tiny())
    data = batches(2)
    for name in ('w_quantizer', 'a_quantizer'):  # stem: a trained stage-1 layer
        getattr(model.stem, name).set_range(torch.tensor([-0.5]), torch.tensor([0.5]))
    assert set(pending_calibration(model)) == {f'{layer}.{k}_quantizer' for layer in (
        'body.0', 'body.2', 'head') for k in 'wa'}
    calibrate_model(model, data)
    with torch.no_grad():
        seen = torch.cat([model.stem(x) for x in data])  # 2-bit stem: 4 levels per input
    torch.testing.assert_close(model.body[0].a_quantizer.scale.detach(),
                               ((seen.max() - seen.min()) / 3).reshape(1))


def test_per_channel_inputs_get_a_step_per_channel():
    model = ModuleSwap(w_bits=4, a_bits=4, a_granularity='channel',
                       calibration=dict(method='minmax', batches=2))(Tiny())
    quantizer = model.body[0].a_quantizer
    assert quantizer.scale.shape == (8, ) and quantizer.channel_dim == 1
    assert model.body[2].a_quantizer.scale.shape == (8, )
    data = batches(2)
    calibrate_model(model, data)
    with torch.no_grad(), passthrough(model):  # the float model's input of body.0
        inputs = torch.cat([model.stem(x) for x in data])
    lo, hi = inputs.amin(dim=(0, 2, 3)), inputs.amax(dim=(0, 2, 3))
    torch.testing.assert_close(quantizer.scale.detach(), (hi - lo) / 15)
    with pytest.raises(ValueError, match='granularity'):
        ModuleSwap(a_granularity='row')


def test_a_float_checkpoint_prints_one_line_for_the_quantizer_state():
    from mmengine.runner.checkpoint import load_state_dict
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        model = ModuleSwap(w_bits=4, a_bits=4, skip=['stem'],
                           calibration=dict(method='mse'))(Tiny())
        records.clear()
        state = Tiny().state_dict()
        del state['head.bias']  # a genuinely missing weight stays listed
        load_state_dict(model, state, logger=logger)
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(r.getMessage() for r in records)
    assert 'no quantizer state for 6 of 6 LSQ / LSQ+ quantizers' in text
    assert 'calibration (mse): 6' in text
    assert 'head.bias' in text and 'scale' not in text.replace('quantizer state', '')
    # a plain torch load sees only the real missing key
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ['head.bias'] and not unexpected


# ----------------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _calibrated_state(data: list[torch.Tensor], num_batches: int, net=Tiny) -> dict:
    """The quantizer state after calibration, with one thread (so that the float sums of the
    forward passes are the same bits in every process)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = ModuleSwap(w_bits=4, a_bits=4, a_granularity='channel',
                           calibration=dict(method='mse'))(net())
        calibrate_model(model, data, num_batches)
    finally:
        torch.set_num_threads(threads)
    return {k: v for k, v in model.state_dict().items() if 'quantizer' in k}


class Branchy(Tiny):
    """A head reached only by batches with a positive mean (a data-dependent branch)."""

    def __init__(self):
        super().__init__()
        self.extra = nn.Linear(4, 4)

    def forward(self, x):
        y = super().forward(x)
        return self.extra(y) if x.mean() > 0 else y


def branchy_batches() -> list[torch.Tensor]:
    """8 batches; only the even ones (process 0's half) reach Branchy.extra."""
    return [b.abs() if i % 2 == 0 else -b.abs() for i, b in enumerate(batches(8))]


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        state = _calibrated_state(batches(8)[rank::2], 4)  # this process's half
        branchy = _calibrated_state(branchy_batches()[rank::2], 4, Branchy)
        if rank == 0:
            torch.save(dict(state=state, branchy=branchy), out)
    finally:
        dist.destroy_process_group()


def test_calibration_under_two_process_ddp_equals_one_process(tmp_path):
    out = str(tmp_path / 'ddp.pt')
    mp.spawn(_ddp_worker, args=(_free_port(), out), nprocs=2, join=True)
    saved = torch.load(out)
    for ddp, single in ((saved['state'], _calibrated_state(batches(8), 8)),
                        (saved['branchy'], _calibrated_state(branchy_batches(), 8, Branchy))):
        assert set(ddp) == set(single)
        for key in single:
            torch.testing.assert_close(ddp[key], single[key], rtol=0, atol=0, msg=key)
        assert any(not torch.equal(single[k], torch.ones_like(single[k]))
                   for k in single if k.endswith('scale'))
    assert 'extra.a_quantizer.scale' in saved['branchy']  # reached by process 0 only


def test_a_quantizer_no_batch_reaches_is_named_and_nothing_changes():
    model = ModuleSwap(w_bits=4, a_bits=4, calibration=dict(method='mse'))(Branchy())
    negative = [-b.abs() for b in batches(2)]
    with pytest.raises(RuntimeError, match=r'got no input .*extra\.a_quantizer.*skip'):
        calibrate_model(model, negative)
    assert set(pending_calibration(model)) == set(step_quantizers(model))  # all still pending


def test_all_batches_are_used_when_the_data_has_fewer():
    model = ModuleSwap(w_bits=8, a_bits=8, calibration=dict(method='minmax', batches=16))(Tiny())
    report = calibrate_model(model, itertools.islice(batches(3), 3))
    assert report['batches'] == 3
