"""The compiled LSQ / LSQ+ pass (mmext.quant.fake_quantize_kernel) that ``fused=True`` takes on
float32 CPU tensors: the eager quantizer's values and input gradients exactly, its step and
zero-point gradients to float rounding, on the layouts the quantizers see."""
import pytest
import torch
from torch import nn

from mmext.quant.fake_quantize_kernel import kernel_layout
from mmext.quant.kernels import lowbit_ops
from mmext.quant.quantizers import LSQPlusQuantizer, fake_quantize

pytestmark = pytest.mark.skipif(lowbit_ops() is None, reason='no C++ compiler for the kernels')


def _steps(shape, zero_point=True):
    g = torch.Generator().manual_seed(1)
    s = (torch.rand(shape, generator=g) * 0.3 + 0.05).requires_grad_()
    z = (torch.randn(shape, generator=g) * 2).requires_grad_() if zero_point else None
    return s, z


def _run(x, s, z, qn, qp, fused, upstream):
    x = x.detach().requires_grad_()
    s = s.detach().requires_grad_()
    z = None if z is None else z.detach().requires_grad_()
    y = fake_quantize(x, s, z, qn, qp, grad_factor=0.1, fused=fused)
    (y * upstream).sum().backward()
    return y.detach(), x.grad, s.grad, None if z is None else z.grad


# (input, step shape, zero point, grid, (outer, groups, inner) the pass reads)
LAYOUTS = {
    # per head of a (B, H, N, d) view of (B, N, H, d): read in place, heads in the middle
    'heads, transposed view': (lambda: (torch.randn(2, 19, 3, 20) * 30).transpose(1, 2),
                               (1, 3, 1, 1),
                               True, (-128, 127), (38, 3, 20)),
    # attention probabilities per head, unsigned
    'probabilities': (lambda: torch.rand(2, 3, 7, 9), (1, 3, 1, 1), True, (0, 15), (2, 3, 63)),
    # one step for all, an odd length (the vector pass and its scalar tail)
    'per tensor': (lambda: torch.randn(37, 41) * 3, (1, ), True, (-8, 7), (1, 1, 1517)),
    # LSQ weight per output channel, no zero point (a depthwise weight: rows of 9)
    'weight rows of 9': (lambda: torch.randn(30, 1, 3, 3), (30, 1, 1, 1), False, (-2, 1),
                         (1, 30, 9)),
    # a convolution input per channel, channels last in memory: a row of steps per pixel
    'channels last': (lambda: torch.randn(2, 5, 4, 4).to(
        memory_format=torch.channels_last), (1, 5, 1, 1), True, (-8, 7), (32, 5, 1)),
    # a Linear input per channel (Q-DETR's per-channel steps): 16-wide and a tail of 4
    'per input channel': (lambda: torch.randn(3, 50, 20) * 3, (1, 1, 20), True, (-8, 7),
                          (150, 20, 1)),
    # the q slice of a fused qkv projection: not dense, read from a contiguous copy
    'qkv slice': (lambda: torch.randn(2, 11, 3, 4, 16).permute(2, 0, 3, 1, 4)[0],
                  (1, 4, 1, 1), True, (-8, 7), (2, 4, 176)),
}


@pytest.mark.parametrize('name', list(LAYOUTS))
def test_kernel_pass_equals_the_eager_quantizer(name):
    make, step_shape, zero_point, (qn, qp), groups = LAYOUTS[name]
    torch.manual_seed(0)
    x = make()
    s, z = _steps(step_shape, zero_point)
    layout = kernel_layout(x, s, z)
    assert layout is not None and layout[1] == groups
    upstream = torch.randn(x.shape)
    eager = _run(x, s, z, qn, qp, False, upstream)
    kernel = _run(x, s, z, qn, qp, True, upstream)
    assert torch.equal(kernel[0], eager[0]) and torch.equal(kernel[1], eager[1])
    assert kernel[0].stride() == layout[0].stride()  # the output keeps the input's layout
    torch.testing.assert_close(kernel[2], eager[2], rtol=1e-5, atol=1e-5)
    assert (eager[2] != 0).any()
    if zero_point:
        torch.testing.assert_close(kernel[3], eager[3], rtol=1e-5, atol=1e-6)
        assert (eager[3] != 0).any()  # some inputs clip


def test_nan_passes_through_as_in_the_eager_quantizer():
    x = torch.tensor([0.5, float('nan'), -3.0] * 8)
    s, z = _steps((1, ))
    y_kernel = fake_quantize(x, s, z, -8, 7, fused=True)
    y_eager = fake_quantize(x, s, z, -8, 7)
    assert torch.equal(y_kernel.isnan(), y_eager.isnan()) and y_kernel.isnan().sum() == 8


def test_layouts_the_pass_does_not_take_go_to_the_other_paths():
    s, z = _steps((1, 64, 1))
    short_rows = torch.randn(256, 64, 3)     # a new step every 3 elements, a large tensor
    assert kernel_layout(short_rows, s, z) is None
    assert kernel_layout(torch.randn(4, 8, dtype=torch.float64), *_steps((1, ))) is None
    s2, z2 = _steps((2, 3))
    assert kernel_layout(torch.randn(2, 3), s2, z2) is None   # steps along two dimensions


def test_a_quantizer_trains_the_same_on_the_kernel_pass():
    """Ten LSQ+ steps (initialisation, then SGD on steps, zero points and inputs) per head on
    the kernel pass and on eager stay together."""
    torch.manual_seed(0)
    runs = []
    for fused in (False, True):
        q = LSQPlusQuantizer(bits=4, num_channels=3, channel_dim=1, init_batches=2)
        q.fused = fused
        x = torch.randn(4, 3, 8, 16, generator=torch.Generator().manual_seed(2))
        opt = torch.optim.SGD(q.parameters(), lr=0.05)
        for _ in range(10):
            opt.zero_grad()
            q(x).square().mean().backward()
            opt.step()
        runs.append(torch.cat([q.scale.detach(), q.zero_point.detach()]))
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-4, atol=1e-5)
    assert not torch.equal(runs[0], torch.cat([torch.ones(3), torch.zeros(3)]))


def test_the_overhead_benchmark_stands_in_for_the_pass_during_its_own_steps_only(monkeypatch):
    """``quant_overhead.py --stand-ins``: a stand-in workload's quantizers run no pass (their
    input, the gradient passed through, zero step gradients) or plain copies, and only inside
    that workload's step."""
    from pathlib import Path

    from mmext.quant import ModuleSwap, kernels
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / 'benchmarks'))
    from quant_overhead import StandInPass, Workload

    real_ops = kernels.lowbit_ops
    x = torch.randn(6, 20, 32)
    outputs = []

    def loss(model):
        outputs.append(model(x))
        return outputs[-1].square().mean()

    for stand_in in (None, StandInPass(real_ops(), copies=False),
                     StandInPass(real_ops(), copies=True)):
        torch.manual_seed(0)
        model = ModuleSwap(w_bits=4, a_bits=4, a_granularity='channel', fused=True)(
            nn.Sequential(nn.Linear(32, 16)))
        layer = model[0]
        work = Workload(model, loss, 'cpu')
        work.stand_in = stand_in
        for _ in range(11):  # the LSQ+ steps initialise over the first ten batches
            work.step()
        assert kernels.lowbit_ops is real_ops
        float_output = nn.functional.linear(x, layer.weight, layer.bias)
        work.step()
        quantized = not torch.equal(outputs[-1], float_output)
        step_grads = [q.scale.grad for q in (layer.a_quantizer, layer.w_quantizer)]
        assert quantized == all((g != 0).any() for g in step_grads) == (stand_in is None)
        loss(model).backward()  # outside a step: the real pass
        assert not torch.equal(outputs[-1], nn.functional.linear(x, layer.weight, layer.bias))


def _initialised_layer(layer, a_granularity, x, batches=11):
    """``layer`` quantized (W4A4, one-pass quantizers) after ``batches`` forward passes (LSQ+
    initialises over its first ten)."""
    from mmext.quant import ModuleSwap
    model = ModuleSwap(w_bits=4, a_bits=4, a_granularity=a_granularity, fused=True)(
        nn.Sequential(layer))
    for _ in range(batches):
        model(x)
    return model[0]


def _forward_backward(layer, x, upstream):
    x = x.detach().requires_grad_()
    y = layer(x)
    (y * upstream).sum().backward()
    return y.detach(), x.grad, {k: p.grad for k, p in layer.named_parameters()}


FUSED_LAYERS = {
    'linear, per input feature': (lambda: nn.Linear(40, 24), (3, 7, 40), 'channel'),
    'linear, per tensor, no bias': (lambda: nn.Linear(40, 24, bias=False), (3, 7, 40), 'tensor'),
    'linear, a 2-d input': (lambda: nn.Linear(19, 5), (11, 19), 'channel'),
    'conv 3 x 3, per channel': (lambda: nn.Conv2d(16, 24, 3, padding=1), (2, 16, 9, 9),
                                'channel'),
    'depthwise, stride 2': (lambda: nn.Conv2d(16, 16, 3, 2, 1, groups=16, bias=False),
                            (2, 16, 20, 20), 'channel'),
    'dilated, grouped, per tensor': (lambda: nn.Conv2d(8, 8, 5, 1, 4, 2, groups=2),
                                     (2, 8, 17, 17), 'tensor'),
    'pointwise, channels last': (lambda: nn.Conv2d(12, 30, 1), (2, 12, 8, 8), 'channel'),
}


@pytest.mark.parametrize('name', list(FUSED_LAYERS))
def test_a_fused_layer_equals_its_separate_quantizers(name, monkeypatch):
    """QLinear / QConv2d with initialised one-pass quantizers run as one autograd node
    (fused_fake_quantized_linear / _conv2d): the same outputs and the same gradients, bit for
    bit, as the separate quantizers and F.linear / F.conv2d."""
    import mmext.quant.layers as layers
    from mmext.quant.fake_quantize_kernel import fused_conv_ready, fused_linear_ready
    make, shape, granularity = FUSED_LAYERS[name]
    torch.manual_seed(0)
    x = torch.randn(shape) * 3
    if name.endswith('channels last'):
        x = x.to(memory_format=torch.channels_last)
    layer = _initialised_layer(make(), granularity, x)
    x = x * 2   # past the initialised ranges: some inputs clip
    ready = fused_linear_ready if isinstance(layer, nn.Linear) else fused_conv_ready
    assert ready(layer, x)
    upstream = torch.randn_like(layer(x))
    fused = _forward_backward(layer, x, upstream)
    layer.zero_grad()
    monkeypatch.setattr(layers, 'fused_linear_ready', lambda *args: False)
    monkeypatch.setattr(layers, 'fused_conv_ready', lambda *args: False)
    separate = _forward_backward(layer, x, upstream)
    assert torch.equal(fused[0], separate[0]) and torch.equal(fused[1], separate[1])
    assert fused[2].keys() == separate[2].keys() and 'a_quantizer.zero_point' in fused[2]
    for key, grad in separate[2].items():
        assert torch.equal(fused[2][key], grad), key
    assert (separate[2]['a_quantizer.zero_point'] != 0).any()


def test_fused_layers_leave_what_they_do_not_take_to_the_separate_quantizers():
    from mmext.quant.fake_quantize_kernel import fused_conv_ready, fused_linear_ready
    x = torch.randn(2, 8, 10, 10)
    conv = _initialised_layer(nn.Conv2d(8, 8, 3, padding=1), 'channel', x)
    assert fused_conv_ready(conv, x)
    assert not fused_conv_ready(conv, x.double())
    conv.a_quantizer.fused = False
    assert not fused_conv_ready(conv, x)
    for padding in (dict(padding='same'), dict(padding=1, padding_mode='reflect')):
        other = _initialised_layer(nn.Conv2d(8, 8, 3, **padding), 'channel', x)
        assert not fused_conv_ready(other, x)
        assert other(x).shape == (2, 8, 10, 10)
    rows = torch.randn(4, 16)
    hooked = _initialised_layer(nn.Linear(16, 4), 'channel', rows)
    assert fused_linear_ready(hooked, rows)
    seen = []
    handle = hooked.a_quantizer.register_forward_hook(lambda *args: seen.append(args[2]))
    assert not fused_linear_ready(hooked, rows)  # a hook on a quantizer runs it as a module
    hooked(rows)
    handle.remove()
    assert len(seen) == 1 and fused_linear_ready(hooked, rows)
    # still initialising (the quantizer's own path writes its steps)
    linear = _initialised_layer(nn.Linear(16, 4), 'channel', rows, batches=9)
    assert not fused_linear_ready(linear, rows)
    linear(rows)
    assert fused_linear_ready(linear, rows)
    # a wrong input width is refused as the separate path refuses it, not reshaped to fit
    wrong = torch.randn(6, 8)
    assert not fused_linear_ready(linear, wrong)
    with pytest.raises(ValueError, match='16 scale groups'):
        linear(wrong)


def test_the_backward_pass_in_place_writes_over_the_gradient_only_where_asked():
    ops = lowbit_ops()
    torch.manual_seed(0)
    x = torch.randn(64, 48) * 3
    s, z = torch.rand(48) * 0.3 + 0.05, torch.randn(48)
    g = torch.randn(64, 48)
    args = (x, s, z, -8, 7, 64, 48, 1, 0.1)
    expected = ops.fake_quantize_groups_backward(g.clone(), *args)
    grad = g.clone()
    in_place = ops.fake_quantize_groups_backward(grad, *args, in_place=True)
    assert in_place[0].data_ptr() == grad.data_ptr()
    for a, b in zip(in_place, expected):
        assert torch.equal(a, b)
    assert not torch.equal(grad, g)
    transposed = g.t().contiguous().t()   # x's shape, other strides: read from a copy
    kept = transposed.clone()
    result = ops.fake_quantize_groups_backward(transposed, *args, in_place=True)
    assert torch.equal(transposed, kept) and torch.equal(result[0], expected[0])
