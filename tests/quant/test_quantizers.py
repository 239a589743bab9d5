import math

import pytest
import torch

from mmext.quant import (
    LearnableScaleBinarizer,
    LSQPlusQuantizer,
    LSQQuantizer,
    RSign,
    SignBinarizer,
    WeightBinarizer,
    sign_ste,
)
from mmext.registry import QUANTIZERS


def test_32_bits_is_the_identity_with_identity_gradients():
    x = torch.randn(4, 8, requires_grad=True)
    for quantizer in (LSQQuantizer(bits=32), LSQPlusQuantizer(bits=32)):
        y = quantizer(x)
        assert y is x
        assert quantizer.init_count == 0  # nothing was initialised either


@pytest.mark.parametrize('bits', [2, 3, 4, 8])
def test_lsq_per_channel_grid_and_error_bound(bits):
    torch.manual_seed(0)
    w = torch.randn(6, 5, 3, 3)
    q = LSQQuantizer(bits=bits, num_channels=6, channel_dim=0)
    w_q = q(w)
    qp = 2 ** (bits - 1) - 1
    s0 = 2 * w.abs().mean(dim=(1, 2, 3)) / math.sqrt(qp)
    torch.testing.assert_close(q.scale.detach(), s0)  # init: 2 mean|w| / sqrt(Qp)
    for c in range(6):
        levels = torch.unique(w_q[c] / s0[c]).round()
        assert len(levels) <= 2 ** bits
        assert levels.min() >= -(2 ** (bits - 1)) and levels.max() <= qp
        inside = (w[c] / s0[c] >= -(2 ** (bits - 1))) & (w[c] / s0[c] <= qp)
        assert ((w_q[c] - w[c])[inside].abs() <= s0[c] / 2 + 1e-6).all()


def test_lsq_step_gradient_matches_hand_computation():
    q = LSQQuantizer(bits=2)  # Qn = -2, Qp = 1
    q.scale.data.fill_(0.5)
    q.init_count.fill_(1)
    w = torch.tensor([0.2, -0.7, 0.9, -1.6, 0.05], requires_grad=True)
    upstream = torch.tensor([1.0, 2.0, -1.0, 0.5, 3.0])
    (q(w) * upstream).sum().backward()
    v = w.detach() / 0.5  # [0.4, -1.4, 1.8, -3.2, 0.1]
    # d w_q / d s = round(v) - v inside [Qn, Qp], else the bound reached.
    dq_ds = torch.where(v > 1, torch.tensor(1.0),
                        torch.where(v < -2, torch.tensor(-2.0), v.round() - v))
    g = 1 / math.sqrt(5 * 1)
    torch.testing.assert_close(q.scale.grad, (upstream * dq_ds).sum().reshape(1) * g)
    inside = ((v >= -2) & (v <= 1)).float()
    torch.testing.assert_close(w.grad, upstream * inside)


def test_lsq_plus_initialises_over_the_first_batches_and_keeps_the_state():
    torch.manual_seed(0)
    q = LSQPlusQuantizer(bits=4, signed=False, init_batches=2).train()
    batches = [torch.rand(3, 7) + 0.5, torch.rand(3, 7) * 2 + 1.0]
    for x in batches:
        q(x)
    qp = 15
    s0 = [2 * x.abs().mean() / math.sqrt(qp) for x in batches]
    z0 = [0 - x.min() / s for x, s in zip(batches, s0)]
    torch.testing.assert_close(q.scale.detach(), ((s0[0] + s0[1]) / 2).reshape(1))
    torch.testing.assert_close(q.zero_point.detach(), ((z0[0] + z0[1]) / 2).reshape(1))
    state = q.state_dict()
    assert int(state['init_count']) == 2
    restored = LSQPlusQuantizer(bits=4, signed=False, init_batches=2)
    restored.load_state_dict(state)
    restored(torch.full((3, 7), 100.0))  # initialised: the statistics do not move
    torch.testing.assert_close(restored.scale, q.scale)


def test_lsq_plus_per_head_scales_and_nonzero_gradients():
    x = torch.randn(2, 4, 5, 8, requires_grad=True)  # (B, H, N, d)
    q = LSQPlusQuantizer(bits=8, num_channels=4, channel_dim=1)
    y = q(x)
    assert q.scale.shape == (4, )
    y.square().sum().backward()
    assert torch.isfinite(q.scale.grad).all() and (q.scale.grad != 0).all()
    # the zero point moves only clipped values: none in the batch it was initialised on
    torch.testing.assert_close(q.zero_point.grad, torch.zeros(4))
    # each head keeps at most 2^8 levels, the batch minimum maps to the lowest
    for h in range(4):
        assert len(torch.unique(y[:, h].detach())) <= 256
    q.zero_point.grad = None
    wide = x.detach() * 1.5
    wide[:, 2] = 0.0  # head 2 has nothing clipped
    q.eval()(wide).sum().backward()  # d y / d z = -s where clipped, 0 inside
    clipped = (wide / q.scale.view(1, 4, 1, 1) + q.zero_point.view(1, 4, 1, 1) < -128) | \
        (wide / q.scale.view(1, 4, 1, 1) + q.zero_point.view(1, 4, 1, 1) > 127)
    g = 1 / (4 * 5 * 8 * 127) ** 0.5  # 1 / sqrt(numel per sample * Qp)
    expected = -q.scale.detach() * clipped.sum(dim=(0, 2, 3)) * g
    torch.testing.assert_close(q.zero_point.grad, expected)
    assert (q.zero_point.grad[[0, 1, 3]] != 0).all() and q.zero_point.grad[2] == 0


def test_wrong_channel_count_is_named():
    q = LSQQuantizer(bits=4, num_channels=3, channel_dim=0)
    with pytest.raises(ValueError, match='3 scale groups along dim 0'):
        q(torch.randn(4, 2))


@pytest.mark.parametrize('bits', [0, 1, 9, 16, 31])
def test_impossible_bit_widths_are_refused(bits):
    with pytest.raises(ValueError, match=r'does not support bits=.*2\.\.8 bits'):
        LSQQuantizer(bits=bits)
    with pytest.raises(ValueError, match='does not support bits'):
        QUANTIZERS.build(dict(type='LSQPlusQuantizer', bits=bits))


@pytest.mark.parametrize('ste, derivative', [
    ('identity', lambda x: torch.ones_like(x)),
    ('clip', lambda x: (x.abs() <= 1).float()),
    ('approx_sign', lambda x: (2 - 2 * x.abs()) * (x.abs() <= 1).float()),
])
def test_sign_gradient_estimators_match_their_definitions(ste, derivative):
    x = torch.tensor([-2.0, -1.0, -0.6, -0.1, 0.0, 0.3, 0.99, 1.5], requires_grad=True)
    y = sign_ste(x, ste)
    assert y.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1]  # +1 at 0, never 0
    y.backward(torch.arange(1.0, 9.0))
    torch.testing.assert_close(x.grad, torch.arange(1.0, 9.0) * derivative(x.detach()))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize('ste, derivative', [
    ('identity', lambda x: torch.ones_like(x)),
    ('clip', lambda x: (x.abs() <= 1).to(x.dtype)),
    ('approx_sign', lambda x: (2 - 2 * x.abs()) * (x.abs() <= 1).to(x.dtype)),
])
def test_sign_and_its_estimators_equal_the_formulas_bit_for_bit(ste, derivative, dtype):
    """sign_ste's float passes (in place of the formulas' bool masks) give their bits: signed
    zeros, infinities and NaN included, in the input's dtype."""
    g = torch.Generator().manual_seed(0)
    special = [0.0, -0.0, 1.0, -1.0, float('inf'), -float('inf'), float('nan'), 0.5]
    x = torch.cat([torch.tensor(special), torch.randn(200, generator=g) * 1.5]).to(dtype)
    grad = torch.cat([torch.randn(200, generator=g), torch.tensor(special)]).to(dtype)
    leaf = x.clone().requires_grad_()
    y = sign_ste(leaf, ste)
    y.backward(grad)
    as_ints = {torch.float32: torch.int32, torch.float64: torch.int64, torch.bfloat16: torch.int16}
    assert y.dtype == leaf.grad.dtype == dtype
    expected_y = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
    assert torch.equal(y.view(as_ints[dtype]), expected_y.view(as_ints[dtype]))
    expected_grad = grad * derivative(x)
    assert torch.equal(leaf.grad.view(as_ints[dtype]), expected_grad.view(as_ints[dtype]))


def test_swish_estimator_matches_the_derivative_of_2sigmoid_minus_1():
    x = torch.linspace(-2, 2, 9, requires_grad=True)
    sign_ste(x, 'swish').sum().backward()
    ref = x.detach().clone().requires_grad_()
    beta = 5.0
    swish = 2 * torch.sigmoid(beta * ref) * (1 + beta * ref * (1 - torch.sigmoid(beta * ref))) - 1
    swish.sum().backward()
    torch.testing.assert_close(x.grad, ref.grad, atol=1e-5, rtol=1e-4)


def test_unknown_ste_is_refused():
    with pytest.raises(ValueError, match="unknown ste 'tanh'"):
        SignBinarizer(ste='tanh')


def test_rsign_threshold_moves_the_sign_and_learns():
    rsign = RSign(num_channels=2, channel_dim=1, ste='clip')
    rsign.threshold.data = torch.tensor([0.5, -0.5])
    x = torch.zeros(1, 2, 2, 2)
    y = rsign(x)
    assert (y[:, 0] == -1).all() and (y[:, 1] == 1).all()
    y.sum().backward()
    assert (rsign.threshold.grad != 0).all()


def test_weight_binarizer_outputs_plus_minus_mean_abs_per_channel():
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    w_b = WeightBinarizer()(w)
    a = w.detach().abs().mean(dim=(1, 2, 3))
    for c in range(4):
        torch.testing.assert_close(w_b[c].detach().abs(), a[c].expand(3, 3, 3))
    torch.testing.assert_close(torch.sign(w_b.detach()), torch.where(w >= 0, 1.0, -1.0))
    learnable = WeightBinarizer(learnable_scale=True, num_channels=4)
    learnable(w).sum().backward()
    assert learnable.scale.grad is not None and (learnable.scale.grad != 0).any()


def test_learnable_scale_binarizer_levels_and_gradients():
    torch.manual_seed(0)
    b = LearnableScaleBinarizer(num_channels=3, channel_dim=1)
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    y = b(x)
    s, z = b.scale.detach(), b.zero_point.detach()
    for h in range(3):
        levels = torch.unique(y[:, h].detach())
        torch.testing.assert_close(levels, torch.stack([s[h] * (-1 - z[h]), s[h] * (1 - z[h])]))
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(b.scale.grad).all() and (b.scale.grad != 0).all()
    assert (b.zero_point.grad != 0).all() and (x.grad != 0).any()


def test_uniform_attention_zero_point_splits_attention_at_one_over_n():
    probs = torch.softmax(torch.randn(2, 3, 6, 6), dim=-1)
    b = LearnableScaleBinarizer(num_channels=3, zero_point_init='uniform_attention')
    y = b(probs)
    high = y > y.amin(dim=(0, 2, 3), keepdim=True)  # the upper of the two levels per head
    torch.testing.assert_close(high, probs >= 1 / 6)


def test_all_zero_channel_gets_a_positive_step_not_a_division_by_zero():
    w = torch.randn(2, 4)
    w[1] = 0
    w_q = LSQQuantizer(bits=4, num_channels=2, channel_dim=0)(w)
    assert torch.isfinite(w_q).all() and (w_q[1] == 0).all()


def test_compiled_and_eager_fake_quantization_agree_in_values_and_gradients():
    import torch._dynamo

    from mmext.quant.quantizers import (
        compiled_fake_quantize,
        fake_quantize,
        fused_fake_quantize_active,
    )
    limit = torch._dynamo.config.cache_size_limit
    torch.manual_seed(0)
    x = (torch.randn(4, 3, 6, 6) * 2).requires_grad_()
    s = torch.tensor([0.3, 0.2, 0.5]).view(1, 3, 1, 1).requires_grad_()
    z = torch.tensor([1.2, -0.4, 3.0]).view(1, 3, 1, 1).requires_grad_()
    upstream = torch.randn(4, 3, 6, 6)
    results = []
    for fused in (False, True):
        for t in (x, s, z):
            t.grad = None
        y = compiled_fake_quantize(x, s, z, -8, 7, grad_factor=0.1) if fused else \
            fake_quantize(x, s, z, -8, 7, grad_factor=0.1)
        (y * upstream).sum().backward()
        results.append([y.detach(), x.grad, s.grad, z.grad])
    if not fused_fake_quantize_active():  # the compiler fell back to eager (with a warning)
        pytest.skip('torch.compile could not build the fused kernel here; only eager ran')
    assert torch._dynamo.config.cache_size_limit == limit  # raised only during the calls
    for eager, fused in zip(*results):
        torch.testing.assert_close(fused, eager, atol=1e-5, rtol=1e-5)
    assert (results[0][3] != 0).all()  # 2x-scaled inputs clip in every channel
