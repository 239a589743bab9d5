"""QAT with the forward product on the integer grid (mmext.quant.integer_qat): the same values up
to float rounding and the same gradients as the fake-quantized layer."""
import copy

import pytest
import torch
from torch import nn

from mmext.quant import ModuleSwap, QConv2d, QLinear
from mmext.quant.integer_qat import integer_grid_ready, is_pointwise
from mmext.quant.kernels import lowbit_ops
from mmext.quant.quantizers import _FakeQuantize

ops = lowbit_ops()
pytestmark = pytest.mark.skipif(ops is None, reason='no C++ compiler for the low-bit helpers')


def initialised_layer(k, n, bits, signed_input=True, per_channel=True, bias=True):
    torch.manual_seed(0)
    layer = QLinear.from_float(
        nn.Linear(k, n, bias=bias),
        w_quantizer=dict(type='LSQQuantizer', bits=bits, per_channel=per_channel),
        a_quantizer=dict(type='LSQPlusQuantizer', bits=bits, signed=signed_input))
    for _ in range(10):    # LSQ+ initialises over its first 10 batches
        layer(torch.randn(4, 5, k) if signed_input else torch.rand(4, 5, k))
    return layer


def forward_backward(layer, x, grad):
    x = x.clone().requires_grad_()
    layer.zero_grad(set_to_none=True)
    out = layer(x)
    out.backward(grad)
    return out, x.grad, {name: p.grad for name, p in layer.named_parameters()}


@pytest.mark.parametrize('bits,signed_input,per_channel,bias', [
    (4, True, True, True), (4, False, False, True), (8, False, True, False), (2, True, True, True),
    (8, True, False, True)])
def test_integer_grid_linear_equals_the_fake_quantized_layer(bits, signed_input, per_channel,
                                                             bias):
    k, n = 70, 33    # sizes that are not multiples of anything
    fake = initialised_layer(k, n, bits, signed_input, per_channel, bias)
    integer = copy.deepcopy(fake)
    integer.integer_gemm = True
    x = torch.randn(3, 9, k) * 2     # values beyond the grid's range: clipped on both sides
    assert integer_grid_ready(integer, x)
    grad = torch.randn(3, 9, n)
    out_f, gx_f, grads_f = forward_backward(fake, x, grad)
    out_i, gx_i, grads_i = forward_backward(integer, x, grad)
    # the float GEMM rounds its partial sums, the integer one is exact
    torch.testing.assert_close(out_i, out_f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx_i, gx_f, rtol=0, atol=0)   # the same mask
    assert grads_i.keys() == grads_f.keys()
    for name in grads_f:
        torch.testing.assert_close(grads_i[name], grads_f[name], rtol=1e-5, atol=1e-6,
                                   msg=lambda m, name=name: f'{name}: {m}')


def test_a_changed_weight_or_step_changes_the_integer_output():
    layer = initialised_layer(16, 8, 4)
    layer.integer_gemm = True
    x = torch.randn(2, 16)
    before = layer(x)
    with torch.no_grad():
        layer.w_quantizer.scale.mul_(1.5)
    assert not torch.allclose(layer(x), before)


def test_layers_that_do_not_qualify_run_the_fake_quantized_path():
    per_channel_input = QLinear(8, 4, w_quantizer=dict(type='LSQQuantizer', bits=4),
                                a_quantizer=dict(type='LSQPlusQuantizer', bits=4,
                                                 per_channel=True))
    binary = QLinear(8, 4, w_quantizer=dict(type='WeightBinarizer'),
                     a_quantizer=dict(type='SignBinarizer'))
    fresh = QLinear(8, 4, w_quantizer=dict(type='LSQQuantizer', bits=4),
                    a_quantizer=dict(type='LSQPlusQuantizer', bits=4))
    x = torch.randn(3, 8)
    for layer in (per_channel_input, binary, fresh):
        layer.integer_gemm = True
        assert not integer_grid_ready(layer, x)
    out = fresh(x)   # the first (initialising) batch takes the fake path and counts
    assert out.shape == (3, 4) and int(fresh.a_quantizer.init_count) == 1
    ready = initialised_layer(8, 4, 4)
    assert integer_grid_ready(ready, x) and not integer_grid_ready(ready, x.double())


def test_module_swap_sets_integer_gemm_and_training_follows_the_fake_quantized_run():
    def model():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                             nn.Linear(32, 3))

    runs = {}
    for integer in (False, True):
        net = ModuleSwap(w_bits=4, a_bits=4, skip=['0'], integer_gemm=integer)(model())
        assert [m.integer_gemm for m in net.modules() if isinstance(m, QLinear)] == [integer] * 2
        optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
        torch.manual_seed(2)
        losses = []
        for _ in range(25):
            x, y = torch.randn(16, 12), torch.randint(0, 3, (16, ))
            loss = nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        runs[integer] = losses
    # 10 initialising steps on the same path, then 15 on the integer grid
    assert runs[True][:11] == runs[False][:11]
    torch.testing.assert_close(torch.tensor(runs[True]), torch.tensor(runs[False]), rtol=1e-3,
                               atol=1e-4)


def test_the_one_pass_input_backward_equals_the_fake_quantizer_backward():
    torch.manual_seed(0)
    x = torch.randn(1000, 37) * 3
    s, z = torch.tensor([0.31]), torch.tensor([1.7])
    grad = torch.randn_like(x)
    xs, ss, zs = (t.clone().requires_grad_() for t in (x, s, z))
    _FakeQuantize.apply(xs, ss, zs, -8, 7, 1.0).backward(grad)
    grad_x, grad_s, grad_z = ops.fake_quantize_groups_backward(grad, x, s, z, -8, 7, 1, 1,
                                                               x.numel(), 1.0)
    torch.testing.assert_close(grad_x, xs.grad, rtol=0, atol=0)
    torch.testing.assert_close(grad_s, ss.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(grad_z, zs.grad, rtol=1e-4, atol=1e-3)
    levels, fake = ops.lsq_input_forward(x, 0.31, 1.7, -8, 7)
    assert int(levels.min()) == -8 and int(levels.max()) == 7
    assert torch.equal(levels, levels.round())
    expected = _FakeQuantize.apply(x, s, z, -8, 7, 1.0)
    torch.testing.assert_close(fake, expected, rtol=0, atol=0)
    torch.testing.assert_close((levels - 1.7) * 0.31, expected, rtol=0, atol=0)
    acc = torch.randn(5, 37)     # 16-wide passes and a tail of 5
    wsum, scale, bias = torch.randn(37), torch.rand(37), torch.randn(37)
    expected = (acc - 1.7 * wsum) * scale + bias
    torch.testing.assert_close(ops.int_epilogue(acc, -1.7, wsum[None], scale, bias, True),
                               expected)


def test_pointwise_convolution_on_the_integer_grid_equals_the_fake_quantized_one():
    torch.manual_seed(0)
    quant = dict(w_quantizer=dict(type='LSQQuantizer', bits=4, per_channel=True),
                 a_quantizer=dict(type='LSQPlusQuantizer', bits=4, signed=False))
    fake = QConv2d.from_float(nn.Conv2d(20, 12, 1), **quant)
    for _ in range(10):
        fake(torch.rand(2, 20, 5, 7))
    integer = copy.deepcopy(fake)
    integer.integer_gemm = True
    x = torch.rand(2, 20, 5, 7) * 3
    assert integer_grid_ready(integer, x) and is_pointwise(integer)
    grad = torch.randn(2, 12, 5, 7)
    out_f, gx_f, grads_f = forward_backward(fake, x, grad)
    out_i, gx_i, grads_i = forward_backward(integer, x, grad)
    assert out_i.shape == out_f.shape and out_i.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_i, out_f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx_i, gx_f, rtol=1e-6, atol=1e-6)
    for name in grads_f:
        torch.testing.assert_close(grads_i[name], grads_f[name], rtol=1e-5, atol=1e-5,
                                   msg=lambda m, name=name: f'{name}: {m}')
    # other convolutions keep the fake-quantized product
    for conv in (nn.Conv2d(20, 12, 3, padding=1), nn.Conv2d(20, 12, 1, stride=2),
                 nn.Conv2d(20, 20, 1, groups=4)):
        assert not is_pointwise(conv)


def test_the_bf16_matmul_mode_is_restored_and_exact_on_levels():
    from mmext.quant.integer_qat import _bf16_matmul
    before = torch.backends.mkldnn.matmul.fp32_precision
    levels = torch.randint(0, 256, (64, 500)).float()     # 8-bit levels, sums below 2^24
    w_levels = torch.randint(-128, 128, (32, 500)).float()
    with _bf16_matmul():
        product = nn.functional.linear(levels, w_levels)
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    assert torch.equal(product, (levels.double() @ w_levels.double().t()).float())
