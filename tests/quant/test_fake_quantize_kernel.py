"""The compiled LSQ / LSQ+ pass (mmext.quant.fake_quantize_kernel) that ``fused=True`` takes on
float32 CPU tensors: the eager quantizer's values and input gradients exactly, its step and
zero-point gradients to float rounding, on the layouts the quantizers see."""
import pytest
import torch

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

    from torch import nn

    from mmext.quant import ModuleSwap
    from mmext.quant import fake_quantize_kernel as one_pass
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / 'benchmarks'))
    from quant_overhead import StandInPass, Workload

    real_pass = one_pass.kernel_fake_quantize
    x = torch.randn(6, 20, 32)
    outputs = []

    def loss(model):
        outputs.append(model(x))
        return outputs[-1].square().mean()

    for stand_in in (None, StandInPass(copies=False), StandInPass(copies=True)):
        torch.manual_seed(0)
        model = ModuleSwap(w_bits=4, a_bits=4, a_granularity='channel', fused=True)(
            nn.Sequential(nn.Linear(32, 16)))
        layer = model[0]
        work = Workload(model, loss, 'cpu')
        work.stand_in = stand_in
        for _ in range(11):  # the LSQ+ steps initialise over the first ten batches
            work.step()
        assert one_pass.kernel_fake_quantize is real_pass
        float_output = nn.functional.linear(x, layer.weight, layer.bias)
        work.step()
        quantized = not torch.equal(outputs[-1], float_output)
        step_grads = [q.scale.grad for q in (layer.a_quantizer, layer.w_quantizer)]
        assert quantized == all((g != 0).any() for g in step_grads) == (stand_in is None)
        loss(model).backward()  # outside a step: the real pass
        assert not torch.equal(outputs[-1], nn.functional.linear(x, layer.weight, layer.bias))
