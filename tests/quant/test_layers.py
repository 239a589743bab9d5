import pytest
import torch
from torch import nn

from mmext.quant import LSQQuantizer, QConv2d, QLinear

from ..conftest import has_nonzero_grad

W4 = dict(type='LSQQuantizer', bits=4, per_channel=True)
A4 = dict(type='LSQPlusQuantizer', bits=4)


def test_float_quantizers_reproduce_the_float_layer_bias_included():
    torch.manual_seed(0)
    linear = nn.Linear(6, 3)
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)
    x, img = torch.randn(5, 6), torch.randn(2, 2, 9, 9)
    torch.testing.assert_close(QLinear.from_float(linear)(x), linear(x))
    torch.testing.assert_close(QConv2d.from_float(conv)(img), conv(img))
    q32 = QLinear.from_float(linear, w_quantizer=dict(type='LSQQuantizer', bits=32),
                             a_quantizer=dict(type='LSQPlusQuantizer', bits=32))
    torch.testing.assert_close(q32(x), linear(x))


def test_quantized_linear_equals_the_float_op_on_quantized_operands():
    torch.manual_seed(0)
    linear = nn.Linear(8, 5)
    q = QLinear.from_float(linear, w_quantizer=W4, a_quantizer=A4)
    assert isinstance(q.w_quantizer, LSQQuantizer) and q.w_quantizer.scale.shape == (5, )
    x = torch.randn(3, 8)
    y = q(x)
    x_q, w_q = q.a_quantizer(x), q.w_quantizer(q.weight)
    torch.testing.assert_close(y, x_q @ w_q.T + linear.bias)
    assert len(torch.unique(w_q[0].detach())) <= 16
    assert not torch.allclose(y, linear(x))
    y.sum().backward()
    assert has_nonzero_grad(q.weight) and has_nonzero_grad(q.bias)
    assert has_nonzero_grad(q.w_quantizer.scale) and has_nonzero_grad(q.a_quantizer.scale)
    # LSQ+'s zero point learns only from clipped inputs (inside the range its two terms cancel)
    assert q.a_quantizer.zero_point.grad is not None


def test_binary_conv_forward_and_backward():
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)
    q = QConv2d.from_float(conv, w_quantizer=dict(type='WeightBinarizer'),
                           a_quantizer=dict(type='SignBinarizer', ste='approx_sign'))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    y = q(x)
    assert y.shape == (2, 4, 8, 8)
    y.sum().backward()
    assert has_nonzero_grad(x) and has_nonzero_grad(q.weight)


def test_bad_quantizer_config_is_refused():
    with pytest.raises(ValueError, match='does not support bits=12'):
        QLinear(4, 4, w_quantizer=dict(type='LSQQuantizer', bits=12))
    with pytest.raises(KeyError, match='NoQuantizer'):
        QLinear(4, 4, a_quantizer=dict(type='NoQuantizer'))
