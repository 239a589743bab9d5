"""Low-bit runtime: packing, the binary kernels against the reference on odd sizes, integer
layers against the fake-quantized ones, whole models from an export, fallbacks and refusals."""
import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmext.quant import ModuleSwap, QConv2d
from mmext.quant.export import export_quantized
from mmext.quant.kernels import lowbit_ops, pack_signs_reference, unpack_signs
from mmext.quant.quantizers import LSQPlusQuantizer
from mmext.quant.runtime import (
    BinaryAttention,
    BinaryConv2d,
    BinaryLinear,
    BinaryLinearPair,
    IntConv2d,
    IntLinear,
    build_runtime_model,
    chain_integer_layers,
    float32_convs_exact,
    fuse_binary_pairs,
    grouped_sums_bound,
    onednn_conv_geometry,
    onednn_int8_conv_sums_exact,
    onednn_int8_sums_exact,
    onednn_preferred,
    sign_thresholds,
)

ops = lowbit_ops()
needs_kernels = pytest.mark.skipif(ops is None, reason='no C++ compiler: kernels not built')
# the fused softmax has no portable path (the runtime keeps the softmax unfused without it)
AVX512 = ops is not None and ops.has_avx512_popcount()
needs_avx512 = pytest.mark.skipif(not AVX512, reason='the fused softmax needs AVX-512')


def _signs(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.randn(*shape, generator=g) >= 0, 1.0, -1.0)


@pytest.mark.parametrize('k', [1, 63, 64, 65, 200])
def test_packing_round_trip_and_the_kernel_packs_the_same_bits(k):
    x = torch.randn(7, k)
    x[0, 0] = 0.0                                     # sign(0) = +1, as the binarizers
    words = pack_signs_reference(x)
    assert words.shape == (7, -(-k // 64)) and words.dtype == torch.int64
    assert torch.equal(unpack_signs(words, k), torch.where(x >= 0, 1.0, -1.0))
    if ops is not None:
        assert torch.equal(ops.pack_signs(x), words)


@needs_kernels
@pytest.mark.parametrize('m,k,n', [(1, 192, 192), (5, 70, 17), (9, 130, 33), (33, 768, 40)])
def test_binary_gemm_gives_the_exact_dot_products(m, k, n):
    w, x = _signs(n, k), torch.randn(m, k)
    layer = BinaryLinear(w, torch.rand(n) + 0.1, torch.randn(n))
    expected = torch.where(x >= 0, 1.0, -1.0) @ w.t()          # exact: |dot| <= k < 2^24
    assert torch.equal(layer.dots(x), expected.int())
    reference = BinaryLinear(w, layer.scale[:n], layer.bias[:n], use_kernel=False)
    assert torch.equal(reference.dots(x), expected.int())
    torch.testing.assert_close(layer(x), reference(x), rtol=1e-5, atol=1e-4)


@needs_kernels
@pytest.mark.parametrize('m,k,n', [(13, 192, 40), (9, 70, 17), (8, 128, 64), (3, 768, 33)])
@pytest.mark.parametrize('threshold', [None, 'column'])
def test_the_gemms_pack_float_rows_as_pack_signs_does(m, k, n, threshold):
    """binary_linear and binary_linear_signs on float32 rows (packed inside the GEMM's pass,
    a block of rows at a time) give what they give on pack_signs' words, raw and scaled, with
    and without a threshold; zeros, -0.0, infinities and NaN pack as pack_signs packs them."""
    g = torch.Generator().manual_seed(m * k)
    x = torch.randn(m, k, generator=g)
    x[0, :4] = torch.tensor([0.0, -0.0, math.inf, -math.inf])
    x[-1, -1] = math.nan
    t = torch.randn(k, generator=g) * 0.3 if threshold else None
    if t is not None:
        x[1, :6] = t[:6]                                 # on the threshold: +1
    layer = BinaryLinear(_signs(n, k, seed=k), torch.rand(n, generator=g) + 0.1,
                         torch.randn(n, generator=g))
    words = ops.pack_signs(x, t)
    assert torch.equal(words, pack_signs_reference(x if t is None else x - t))
    args = (layer.weight_words, k, layer.scale, layer.bias, n)
    for raw in (False, True):
        expected = ops.binary_linear(words, *args, raw)
        assert torch.equal(ops.binary_linear(x, *args, raw, t), expected)
        # float input of any leading shape gives outputs of that shape
        assert torch.equal(ops.binary_linear(x.view(1, m, 1, k), *args, raw, t),
                           expected.view(1, m, 1, n))
        assert torch.equal(ops.binary_linear(x[2], *args, raw, t), expected[2])
        assert ops.binary_linear(x[:0], *args, raw, t).shape == (0, n)
    below = torch.randint(-k, k, (layer.npad, ), generator=g, dtype=torch.int32)
    above = below + torch.randint(0, k, (layer.npad, ), generator=g, dtype=torch.int32)
    signs_args = (layer.weight_words, k, below, above, n)
    assert torch.equal(ops.binary_linear_signs(x, *signs_args, t),
                       ops.binary_linear_signs(words, *signs_args))


@needs_kernels
def test_the_gemms_name_an_input_they_cannot_take():
    layer = BinaryLinear(_signs(16, 70), torch.ones(16), None)
    args = (layer.weight_words, 70, layer.scale, layer.bias, 16, False)
    words = ops.pack_signs(torch.randn(4, 70))
    with pytest.raises(RuntimeError, match='threshold applies to float input'):
        ops.binary_linear(words, *args, torch.zeros(70))
    with pytest.raises(RuntimeError, match='does not have 70 columns'):
        ops.binary_linear(torch.randn(4, 71), *args)
    with pytest.raises(RuntimeError, match='threshold needs one float32 per column'):
        ops.binary_linear(torch.randn(4, 70), *args, torch.zeros(69))
    with pytest.raises(RuntimeError, match='do not fit weight words'):
        ops.binary_linear(words.int(), *args)
    with pytest.raises(RuntimeError, match='rows of 200 signs do not fit'):
        ops.binary_linear(words, layer.weight_words, 200, layer.scale, layer.bias, 16, False)
    with pytest.raises(RuntimeError, match='float input must be float32, got Double'):
        ops.binary_linear(torch.randn(4, 70).double(), *args)


@needs_kernels
def test_the_binary_kernels_take_operands_in_any_layout():
    """Weight words, scale, bias and the convolution's tap fix-ups that are not contiguous
    (the same values in another memory order) give the same outputs."""
    def scattered(t):
        return t.t().contiguous().t() if t.dim() == 2 else t.repeat_interleave(2)[::2]

    layer = BinaryLinear(_signs(40, 130), torch.rand(40) + 0.1, torch.randn(40))
    x = torch.randn(9, 130)
    args = (layer.weight_words, 130, layer.scale, layer.bias, 40, False)
    moved = tuple(scattered(a) if torch.is_tensor(a) else a for a in args)
    assert not any(torch.is_tensor(a) and a.is_contiguous() for a in moved)
    assert torch.equal(ops.binary_linear(x, *moved), ops.binary_linear(x, *args))
    below = torch.randint(-130, 0, (layer.npad, ), dtype=torch.int32)
    above = below + 100
    assert torch.equal(
        ops.binary_linear_signs(x, scattered(layer.weight_words), 130, below, above, 40),
        ops.binary_linear_signs(x, layer.weight_words, 130, below, above, 40))
    conv = BinaryConv2d(_signs(24, 70, 3, 3), torch.rand(24) + 0.1, torch.randn(24), 1, 1, 1)
    image = torch.randn(2, 70, 9, 7)
    expected = conv(image)
    for name in ('weight_words', 'tap_dot', 'scale', 'bias'):
        setattr(conv, name, scattered(getattr(conv, name)))
        assert not getattr(conv, name).is_contiguous()
    assert torch.equal(conv(image), expected)


@needs_kernels
@pytest.mark.parametrize('c,n,k,stride,pad,dil,size,groups', [
    (3, 5, 3, 1, 1, 1, (7, 9), 1), (70, 17, 3, 2, 1, 1, (9, 8), 1),
    # 1 x 1 without padding: the linear kernel on pixels (strided; words of 64 and of 70 bits);
    # with padding: the convolution kernel
    (64, 16, 1, 1, 0, 1, (5, 5), 1), (70, 33, 1, 2, 0, 1, (9, 8), 1),
    (16, 8, 1, 3, 0, 2, (7, 7), 1),
    (70, 17, 1, 1, 1, 1, (4, 5), 1),
    (130, 33, 3, 1, 2, 2, (6, 7), 1), (16, 20, 5, 3, 2, 1, (11, 10), 1),
    # stride = kernel, few channels: patches as rows (147 bits: rows of 7 cross words; a
    # border that no patch covers)
    (3, 10, 7, 7, 0, 1, (23, 22), 1), (5, 16, 4, 4, 0, 1, (18, 17), 1),
    # depthwise and grouped: exact float32 convolutions of the signs
    (12, 12, 3, 2, 1, 1, (9, 8), 12), (20, 20, 3, 1, 2, 2, (7, 7), 20), (8, 12, 3, 1, 1, 1, (7, 7), 4)])
def test_binary_convolution_gives_the_exact_dot_products(c, n, k, stride, pad, dil, size, groups):
    w, x = _signs(n, c // groups, k, k), torch.randn(2, c, *size)
    expected = F.conv2d(torch.where(x >= 0, 1.0, -1.0).double(), w.double(), None, stride,
                        pad, dil, groups)        # zero padding: a padded position adds 0
    layer = BinaryConv2d(w, torch.rand(n) + 0.1, torch.randn(n), stride, pad, dil, groups=groups)
    assert layer.pointwise == (k == 1 and pad == 0)
    assert torch.equal(layer.dots(x), expected.round().int())
    if layer.pointwise:                   # a channels-last input: its pixels are a view
        x_last = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(layer.dots(x_last), expected.round().int())
        assert torch.equal(layer(x_last), layer(x))
    reference = BinaryConv2d(w, layer.scale[:n], layer.bias[:n], stride, pad, dil,
                             use_kernel=False, groups=groups)
    assert torch.equal(reference.dots(x), expected.round().int())
    torch.testing.assert_close(layer(x), reference(x), rtol=1e-5, atol=1e-4)
    if groups > 1:      # the same roundings as the reference, on either route
        assert torch.equal(layer(x), reference(x))
        assert layer.depthwise == (c == n == groups)
        convolved = BinaryConv2d(w, layer.scale[:n], layer.bias[:n], stride, pad, dil,
                                 groups=groups, depthwise_kernel=False)
        assert not convolved.depthwise and torch.equal(convolved(x), reference(x))


@needs_kernels
def test_float_signs_are_the_packed_signs_in_the_inputs_layout():
    """The +-1 signs a grouped binary convolution multiplies: +1 where x >= 0 (-0.0 and 0.0
    included), -1 elsewhere (NaN included), as the packing kernels and the reference decide;
    vector lanes and the scalar tail, channels-last layout kept."""
    special = torch.tensor([-0.0, 0.0, 1e-45, -1e-45, float('nan'), float('inf'), -float('inf')])
    x = torch.cat([special, torch.randn(2 * 3 * 5 * 7 - special.numel())]).view(2, 3, 5, 7)
    for y in (x, x.contiguous(memory_format=torch.channels_last)):
        signs = ops.float_signs(y)
        assert torch.equal(signs, torch.where(y >= 0, 1.0, -1.0))
        assert signs.stride() == y.stride()


@needs_kernels
@pytest.mark.parametrize('per_channel', [True, False])
def test_a_learned_sign_threshold_is_subtracted_while_packing(per_channel):
    """RSign's threshold (per input channel, or one) inside the packing pass: the kernels give
    the dots of sign(x - threshold), as the reference (which subtracts first) does."""
    torch.manual_seed(0)
    k, c = 70, 70
    threshold = torch.randn(k if per_channel else 1) * 0.5
    x = torch.randn(9, k)
    x[:, :5] = threshold[:5] if per_channel else threshold   # exactly on the threshold: +1
    w = _signs(17, k)
    expected = torch.where(x - threshold >= 0, 1.0, -1.0) @ w.t()
    for use_kernel in (True, False):
        layer = BinaryLinear(w, torch.rand(17) + 0.1, None, threshold, use_kernel)
        assert torch.equal(layer.dots(x), expected.int())
    image = torch.randn(2, c, 6, 5)
    wc = _signs(8, c, 3, 3)
    shifted = image - (threshold.view(1, -1, 1, 1) if per_channel else threshold)
    expected = F.conv2d(torch.where(shifted >= 0, 1.0, -1.0).double(), wc.double(), None, 1, 1)
    for use_kernel in (True, False):
        conv = BinaryConv2d(wc, torch.rand(8) + 0.1, None, 1, 1, 1, threshold, use_kernel)
        assert torch.equal(conv.dots(image), expected.round().int())
    # a depthwise convolution (exact float32 signs) subtracts it too
    wd = _signs(c, 1, 3, 3)
    expected = F.conv2d(torch.where(shifted >= 0, 1.0, -1.0).double(), wd.double(), None, 1, 1,
                        groups=c)
    for use_kernel in (True, False):
        conv = BinaryConv2d(wd, torch.rand(c) + 0.1, None, 1, 1, 1, threshold, use_kernel, c)
        assert torch.equal(conv.dots(image), expected.round().int())
    # a patch embedding (stride = kernel, 3 channels): the threshold inside the patch packing
    image, wp = torch.randn(2, 3, 12, 8), _signs(8, 3, 4, 4)
    t3 = threshold[:3] if per_channel else threshold
    shifted = image - (t3.view(1, -1, 1, 1) if per_channel else t3)
    expected = F.conv2d(torch.where(shifted >= 0, 1.0, -1.0).double(), wp.double(), None, 4)
    for use_kernel in (True, False):
        patch = BinaryConv2d(wp, torch.rand(8) + 0.1, None, 4, 0, 1, t3, use_kernel)
        assert patch.patches
        assert torch.equal(patch.dots(image), expected.round().int())


@needs_kernels
@pytest.mark.parametrize('kind', ['linear', 'conv'])
def test_the_scaled_output_is_the_rounded_dot_times_scale_plus_bias(kind):
    # Interior blocks of 8 pixels (20 x 20, 3 x 3) take the fused register path, the border
    # the stored one: both round fma(dot, scale, bias) once, so every output is within one
    # float rounding of the exact value, also near zero where the next sign is decided.
    g = torch.Generator().manual_seed(1)
    if kind == 'conv':
        w, x = _signs(24, 40, 3, 3), torch.randn(2, 40, 20, 20, generator=g)
        layer = BinaryConv2d(w, torch.rand(24, generator=g) + 0.1, torch.randn(24, generator=g),
                             1, 1, 1)
        shape = (1, -1, 1, 1)
    else:
        w, x = _signs(40, 768), torch.randn(37, 768, generator=g)
        layer = BinaryLinear(w, torch.rand(40, generator=g) + 0.1, torch.randn(40, generator=g))
        shape = (1, -1)
    n = w.shape[0]
    exact = layer.dots(x).double() * layer.scale[:n].double().view(shape) + \
        layer.bias[:n].double().view(shape)
    error = (layer(x).double() - exact).abs()
    assert (error <= exact.abs() * 2.0 ** -24 + 1e-30).all(), float(error.max())


@pytest.mark.parametrize('use_kernel', [True, False])
def test_integer_linear_accumulates_exactly_and_matches_the_fake_quantized_layer(use_kernel):
    if use_kernel and ops is None:
        pytest.skip('no C++ compiler')
    torch.manual_seed(0)
    for bits in (4, 8):
        fq = ModuleSwap(w_bits=bits, a_bits=bits)(nn.Sequential(nn.Linear(40, 24))).train()
        for _ in range(10):
            fq(torch.randn(6, 40))
        fq.eval()
        q = fq[0]
        x = torch.randn(3, 5, 40)
        wq = q.w_quantizer(q.weight)
        ints = torch.round(wq / q.w_quantizer.scale.view(-1, 1)).to(torch.int8)
        layer = IntLinear(ints, q.w_quantizer.scale, q.bias, q.a_quantizer, use_kernel)
        s, z = q.a_quantizer.scale, q.a_quantizer.zero_point
        levels = q.a_quantizer(x) / s + z                       # the fake quantizer's integers
        acc = (levels.reshape(-1, 40) - layer.offset).double() @ ints.double().t()
        assert torch.equal(layer.accumulate(x), acc.round().int())
        torch.testing.assert_close(layer(x), q(x), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(ops is None, reason='no C++ compiler')
def test_integer_kernels_round_as_the_torch_reference():
    """The compiled quantization and epilogue passes (16 lanes at a time, and a tail) give the
    reference's floats bit for bit: a multiply and add fused into one rounding by the compiler
    would move outputs by an ulp, and the next quantizer's levels with them. Both GEMMs give
    the same sums, so the same floats."""
    torch.manual_seed(0)
    for bits, signed in ((8, False), (4, True)):
        fq = ModuleSwap(w_bits=bits, a_bits=bits)(nn.Sequential(nn.Linear(40, 37))).train()
        for _ in range(10):
            fq(torch.rand(6, 40) * 4 - (2 if signed else 0))
        q = fq.eval()[0]
        ints = torch.round(q.w_quantizer(q.weight) / q.w_quantizer.scale.view(-1, 1))
        args = (ints.to(torch.int8), q.w_quantizer.scale, q.bias * 100, q.a_quantizer)
        reference = IntLinear(*args, use_kernel=False, backend='int_mm')
        x = torch.randn(300, 40) * 3
        expected = reference(x)
        backends = ('int_mm', 'onednn') if onednn_int8_sums_exact() else ('int_mm', )
        for backend in backends:
            layer = IntLinear(*args, backend=backend)
            assert layer.gemm == backend
            assert torch.equal(layer.quantize(x), reference.quantize(x))
            assert torch.equal(layer.unsigned_levels(x), reference.unsigned_levels(x))
            assert torch.equal(layer.float_levels(x), reference.float_levels(x))
            # the levels keep a channels-last input's layout (no copy); any strides work
            for y in (x.view(4, 75, 5, 8).contiguous(memory_format=torch.channels_last),
                      x.view(4, 75, 5, 8)[:, ::2]):
                for levels, expected_levels in ((layer.quantize(y), reference.quantize(y)),
                                                (layer.float_levels(y), reference.float_levels(y))):
                    assert torch.equal(levels, expected_levels)
                    assert levels.stride() == expected_levels.stride()
            assert torch.equal(layer(x), expected), (bits, backend)
    # 'auto' takes oneDNN for wide outputs only, and only on CPUs with AMX-INT8 (where it was
    # the faster GEMM; both cases, whatever this CPU has)
    from mmext.quant import runtime
    quantizer = LSQPlusQuantizer(bits=8)
    quantizer.eval()(torch.randn(8, 40))
    for flags in (frozenset({'amx_int8'}), frozenset({'avx512_vnni'})):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(runtime, 'cpu_flags', lambda flags=flags: flags)
            narrow, wide = (IntLinear(torch.ones(n, 40, dtype=torch.int8), torch.ones(n), None,
                                      quantizer)
                            for n in (IntLinear.ONEDNN_MIN_OUT - 1, IntLinear.ONEDNN_MIN_OUT))
            assert narrow.gemm == 'int_mm'
            assert wide.gemm == ('onednn' if onednn_preferred() else 'int_mm')
            assert onednn_preferred() == ('amx_int8' in flags and onednn_int8_sums_exact())


def test_onednn_sums_equal_int_mm_where_they_are_exact(monkeypatch):
    """oneDNN's float sums equal torch._int_mm's integers on every grid (signed and unsigned 8
    bit, 4 bit), at the largest sums the 2^24 bound lets through; a layer past the bound
    runs on torch._int_mm under 'auto' and is refused under 'onednn', naming the bound."""
    from mmext.quant import runtime
    if not onednn_int8_sums_exact():
        pytest.skip("no oneDNN int8 linear with exact sums in this torch build")
    g = torch.Generator().manual_seed(3)
    k = 513                                   # 255 * 128 * 513 = 16,744,320 <= 2^24
    for bits, signed in ((8, False), (8, True), (4, True)):
        quantizer = LSQPlusQuantizer(bits=bits, signed=signed)
        quantizer.eval()(torch.randn(64, k, generator=g))
        ints = torch.where(torch.rand(7, k, generator=g) > 0.5, 127, -128).to(torch.int8)
        ints[0], ints[1] = 127, -128       # with x's first rows, oneDNN's sums near 2^24
        fast = IntLinear(ints, torch.full((7,), 1e-3), None, quantizer, backend='onednn')
        plain = IntLinear(ints, torch.full((7,), 1e-3), None, quantizer, backend='int_mm')
        x = torch.randn(40, k, generator=g) * 10         # many levels at the grid's ends
        x[0], x[1] = 1e4, -1e4
        assert torch.equal(fast._onednn_sums(x),
                           plain.accumulate(x).float())
        assert torch.equal(fast(x), plain(x))
    wide = IntLinear.ONEDNN_MIN_OUT
    ints = torch.full((wide, 600), 127, dtype=torch.int8)
    monkeypatch.setattr(runtime, 'cpu_flags', lambda: frozenset({'amx_int8'}))  # 'auto' asks it
    assert IntLinear(ints, torch.ones(wide), None, quantizer).gemm == 'onednn'  # 15 * 127 * 600
    quantizer = LSQPlusQuantizer(bits=8)
    quantizer.eval()(torch.randn(64, 600, generator=g))
    assert IntLinear(ints, torch.ones(wide), None, quantizer).gemm == 'int_mm'
    with pytest.raises(ValueError, match=r"cannot run this layer: its sums can reach 19431000, "
                                         r"beyond 2\^24.*use 'auto'"):
        IntLinear(ints, torch.ones(wide), None, quantizer, backend='onednn')


@needs_kernels
@pytest.mark.parametrize('shape', [(1, 1, 1, 1), (2, 3, 5, 7), (2, 17, 3, 33), (1, 32, 4, 64),
                                   (3, 48, 2, 15), (1, 144, 3, 56)])
def test_quantizing_into_channels_last_gives_the_same_levels(shape):
    """quantize_int8_channels_last (an NCHW float input's levels written channels-last in the
    quantizing pass, 16 x 16 byte blocks transposed, the rest one by one) equals quantize_int8
    then a channels-last copy, NaN and infinities included, for any input layout."""
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g) * 3
    x.view(-1)[::7] = math.nan
    x.view(-1)[1::11] = math.inf
    for args in ((0.05, 3.0, -128, 127, 0), (0.1, -2.0, 0, 255, 0), (0.02, 1.0, -8, 7, -8)):
        expected = ops.quantize_int8(x, *args).contiguous(memory_format=torch.channels_last)
        for layout in (x, x.contiguous(memory_format=torch.channels_last)):
            got = ops.quantize_int8_channels_last(layout, *args)
            assert got.is_contiguous(memory_format=torch.channels_last)
            assert torch.equal(got, expected)
    with pytest.raises(RuntimeError, match=r'x must be \(B, C, H, W\) float32'):
        ops.quantize_int8_channels_last(x[0], *args)


@pytest.mark.parametrize('use_kernel', [True, False])
@pytest.mark.parametrize('c,n,k,stride,pad,dil,size,groups', [
    (3, 5, 3, 1, 1, 1, (7, 9), 1), (70, 17, 3, 2, 1, 1, (9, 8), 1), (13, 16, 1, 1, 0, 1, (5, 5), 1),
    (9, 33, 3, 1, 2, 2, (6, 7), 1), (5, 6, 3, (2, 1), (1, 2), 1, (7, 6), 1),
    (12, 12, 3, 2, 1, 1, (9, 8), 12), (20, 20, 3, 1, 2, 2, (7, 7), 20),     # depthwise
    (8, 12, 3, 1, 1, 1, (7, 7), 4), (6, 6, 3, (2, 1), (1, 2), 1, (7, 6), 3)])   # grouped
@pytest.mark.parametrize('bits', [8, 4])
def test_integer_convolution_accumulates_exactly(c, n, k, stride, pad, dil, size, groups,
                                                 use_kernel, bits):
    if use_kernel and ops is None:
        pytest.skip('no C++ compiler')
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(c, n, k, stride, pad, dil, groups))
    fq = ModuleSwap(w_bits=bits, a_bits=bits)(conv).train()
    for _ in range(10):
        fq(torch.randn(2, c, *size))
    q = fq.eval()[0]
    ints = torch.round(q.w_quantizer(q.weight) / q.w_quantizer.scale.view(-1, 1, 1, 1))
    layer = IntConv2d(ints.to(torch.int8), q.w_quantizer.scale, q.bias, q.a_quantizer,
                      q.stride, q.padding, q.dilation, use_kernel, groups=groups)
    x = torch.randn(2, c, *size)
    s, z = q.a_quantizer.scale, q.a_quantizer.zero_point
    levels = (q.a_quantizer(x) / s + z).round()      # the fake quantizer's integers
    # the padding is the real value 0: it adds nothing (the layer corrects for its offset)
    shifted = F.conv2d((levels - layer.offset).double(), ints.double(), None, stride, pad, dil,
                       groups)
    expected = shifted.permute(0, 2, 3, 1).reshape(-1, n).round().int()
    assert torch.equal(layer.accumulate(x), expected)
    out = layer(x)
    torch.testing.assert_close(out, q(x), rtol=1e-4, atol=1e-4)
    # a channels-last input (what the previous runtime layer hands on) gives the same floats
    assert torch.equal(layer(x.contiguous(memory_format=torch.channels_last)), out)
    # the kernels' float32 sums and the reference's float64 ones give the same floats
    args = (ints.to(torch.int8), q.w_quantizer.scale, q.bias, q.a_quantizer, q.stride,
            q.padding, q.dilation)
    if use_kernel:
        assert torch.equal(IntConv2d(*args, use_kernel=False, groups=groups)(x), out)
    # 'auto': a depthwise layer on the compiled kernel; oneDNN's int8 convolution where exact
    # for other grouped layers and for an im2col of few outputs; else torch._int_mm / float32
    # on the geometries oneDNN takes exactly
    admitted = onednn_int8_conv_sums_exact() and not onednn_conv_geometry(
        layer.kernel_size, layer.stride, layer.padding, layer.dilation)
    pointwise = k == 1 and stride == 1 and pad == 0
    if use_kernel and c == n == groups:
        assert layer.gemm == 'depthwise'
    elif admitted and (groups > 1 or not pointwise):
        assert layer.gemm == 'onednn'
    else:
        assert layer.gemm == ('float32' if groups > 1 else 'int_mm')
    # every route gives the same floats: the float32 convolution (grouped) or torch._int_mm,
    # and oneDNN's (its levels q - Qn, its zero point in the padding)
    plain = IntConv2d(*args, use_kernel, backend='int_mm', groups=groups, depthwise_kernel=False)
    assert plain.gemm == ('float32' if groups > 1 else 'int_mm')
    assert torch.equal(plain(x), out)
    if admitted:
        onednn = IntConv2d(*args, use_kernel, backend='onednn', groups=groups,
                           depthwise_kernel=False)
        assert onednn.gemm == 'onednn' and torch.equal(onednn(x), out)
        # the levels a layer before hands on (q - Qn as int8, channels-last)
        levels = onednn.unsigned_levels(x).view(torch.int8)
        assert torch.equal(onednn(levels.contiguous(memory_format=torch.channels_last)), out)


@needs_kernels
@pytest.mark.parametrize('c,h,w,k,stride,pad,dil', [
    (20, 7, 9, 3, 1, 1, 1), (33, 17, 19, 3, 1, 1, 1), (18, 11, 13, 3, 1, 0, 1),
    (17, 16, 16, 3, 2, 1, 1), (7, 6, 6, 3, 1, 2, 2), (48, 20, 23, 5, 1, 2, 1),
    (40, 9, 9, 5, 2, 4, 2), (35, 12, 30, 7, 1, 3, 1),      # a size without an unrolled path
    (20, 3, 3, 5, 1, 2, 1),                                # an image smaller than the kernel
    # small maps, mostly border, whose tap values are zero-padded first (and 4 x 4 at a
    # dilated 5 x 5, mostly padding, which is not)
    (16, 14, 14, 5, 1, 4, 2), (17, 7, 7, 3, 2, 1, 1), (20, 4, 4, 5, 1, 2, 1),
    (20, 4, 4, 5, 1, 4, 2), (33, 5, 6, 3, 1, 2, 1)])
@pytest.mark.parametrize('inputs', ['float levels', 'int8 levels', 'signs'])
def test_the_depthwise_kernel_gives_exact_sums_and_the_epilogues_rounding(c, h, w, k, stride,
                                                                          pad, dil, inputs):
    """Channels not a multiple of 16, borders, strides, dilations and kernel sizes: the exact
    sums (float64 convolution of the levels or of the signs of x - t) and the integer
    epilogue ``(acc + c * weight_sum[pixel]) * scale + bias`` rounded as int_epilogue does."""
    g = torch.Generator().manual_seed(c)
    signs = inputs == 'signs'
    x = torch.randn(2, c, h, w, generator=g) if signs else \
        torch.randint(-128, 128, (2, c, h, w), generator=g).float()
    weight = torch.randint(-8, 8, (c, 1, k, k), generator=g).float()
    threshold = torch.randn(c, generator=g) * 0.3 if signs else None
    if signs:           # on the threshold (x - t = 0: +1) and NaN (-1), as the packing takes them
        x[0, :, 0, 0], x[1, 0, -1, -1] = threshold, float('nan')
    values = torch.where(x - threshold.view(1, -1, 1, 1) >= 0, 1.0, -1.0) if signs else x
    sums = F.conv2d(values.double(), weight.double(), None, stride, pad, dil, c).float()
    oh, ow = sums.shape[-2:]
    weight_sum, scale, bias = (torch.randn(oh * ow, c, generator=g),
                               torch.rand(c, generator=g), torch.randn(c, generator=g))
    rows = sums.permute(0, 2, 3, 1).reshape(-1, c).contiguous()
    expected = ops.int_epilogue(rows, 0.7, weight_sum, scale, bias, False).view(2, oh, ow, c)
    pixels = x.permute(0, 2, 3, 1)
    if inputs == 'int8 levels':
        pixels = pixels.to(torch.int8)
    args = (pixels, weight.view(c, -1).t().contiguous(), k, k, stride, stride, pad, pad, dil,
            dil, signs, threshold, 0.7, weight_sum, scale, bias)
    got = ops.depthwise_conv2d(*args)
    assert torch.equal(got, expected)
    # handing the next layer its levels: the epilogue, torch's clamp and quantize_int8 in turn
    for lo, hi, offset in ((0.0, 6.0, 0), (0.0, math.inf, 128)):
        levels = ops.depthwise_conv2d(*args, levels=[lo, hi, 0.05, 1.0, 0, 255, offset])
        clamped = torch.clamp(expected, lo, hi) if hi < math.inf else F.relu(expected)
        assert levels.dtype == torch.int8
        assert torch.equal(levels, ops.quantize_int8(clamped, 0.05, 1.0, 0, 255, offset))


@needs_kernels
def test_the_depthwise_kernel_names_what_it_cannot_take():
    x, taps = torch.zeros(1, 4, 4, 3), torch.zeros(9, 3)
    ws, ones = torch.zeros(1, 3), torch.ones(3)
    with pytest.raises(RuntimeError, match='signs are taken of float32 inputs'):
        ops.depthwise_conv2d(x.to(torch.int8), taps, 3, 3, 1, 1, 1, 1, 1, 1, True, None, 0.0, ws,
                             ones, ones)
    with pytest.raises(RuntimeError, match=r'weight must be \(KH \* KW, C\) = \(9, 3\)'):
        ops.depthwise_conv2d(x, torch.zeros(9, 4), 3, 3, 1, 1, 1, 1, 1, 1, False, None, 0.0, ws,
                             ones, ones)
    with pytest.raises(RuntimeError, match='at most 256 taps, got 17 x 17'):
        ops.depthwise_conv2d(x, torch.zeros(289, 3), 17, 17, 1, 1, 8, 8, 1, 1, False, None, 0.0,
                             ws, ones, ones)
    with pytest.raises(RuntimeError, match='weight_sum needs 1 or OH \\* OW = 16 rows, got 2'):
        ops.depthwise_conv2d(x, taps, 3, 3, 1, 1, 1, 1, 1, 1, False, None, 0.0,
                             torch.zeros(2, 3), ones, ones)
    with pytest.raises(RuntimeError, match=r'levels must be \(act_lo, act_hi, s > 0'):
        ops.depthwise_conv2d(x, taps, 3, 3, 1, 1, 1, 1, 1, 1, False, None, 0.0, ws, ones, ones,
                             levels=[0.0, 6.0, 0.05, 0.0, -8, 7])


class TinyNet(nn.Module):
    """Convs and linears of every runtime kind: int conv, binary conv with padding and
    stride, binary linears (a tiny binary MLP head), an int linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.conv = nn.Conv2d(16, 24, 3, padding=1)
        self.bconv = nn.Conv2d(24, 70, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(70, 130)
        self.fc2 = nn.Linear(130, 40)
        self.head = nn.Linear(40, 5)

    def forward(self, x):
        x = self.bconv(torch.relu(self.conv(self.stem(x))))
        x = x.mean((2, 3))
        return self.head(self.fc2(torch.relu(self.fc1(x)) - 0.5))


@pytest.mark.parametrize('use_kernel', [True, False])
def test_runtime_model_predicts_as_the_fake_quantized_model(tmp_path, use_kernel):
    if use_kernel and ops is None:
        pytest.skip('no C++ compiler')
    torch.manual_seed(0)
    swap = ModuleSwap(w_bits=8, a_bits=8, skip=['stem'],
                      overrides=[dict(pattern='bconv', w_bits=1, a_bits=1),
                                 dict(pattern='fc*', w_bits=1, a_bits=1),
                                 dict(pattern='head', w_bits=4, a_bits=4)])
    model = swap(TinyNet()).train()
    for _ in range(10):
        model(torch.randn(4, 3, 12, 12))
    model.eval()
    x = torch.randn(16, 3, 12, 12)
    expected = model(x)
    path = tmp_path / 'tiny.safetensors'
    export_quantized(model, path)
    runtime, report = build_runtime_model(swap(TinyNet()), path, use_kernel=use_kernel)
    assert report.counts() == {'int8': 1, 'binary': 3, 'int4': 1}
    assert isinstance(runtime.fc1, BinaryLinear) and isinstance(runtime.bconv, BinaryConv2d)
    got = runtime(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))


class ConvNormNet(nn.Module):
    """Convolutions with BatchNorms after them: an int conv in an mmcv ConvModule (conv, norm,
    act), a depthwise int conv and a binary conv in an nn.Sequential each followed by its BN,
    and a ConvModule whose norm runs after the activation (not foldable)."""

    def __init__(self):
        from mmcv.cnn import ConvModule
        super().__init__()
        bn = dict(type='BN')
        self.block = ConvModule(3, 16, 3, padding=1, norm_cfg=bn, act_cfg=dict(type='ReLU6'))
        self.seq = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16),
                                 nn.BatchNorm2d(16), nn.Conv2d(16, 70, 3, stride=2, padding=1),
                                 nn.BatchNorm2d(70))
        self.late = ConvModule(70, 8, 1, norm_cfg=bn, order=('conv', 'act', 'norm'))

    def forward(self, x):
        return self.late(self.seq(self.block(x))).mean((2, 3))


def _random_statistics(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d):
            n = norm.num_features
            norm.running_mean.copy_(torch.randn(n, generator=g))
            norm.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.1)
            norm.weight.data.copy_(torch.randn(n, generator=g))     # some negative
            norm.bias.data.copy_(torch.randn(n, generator=g))


@pytest.mark.parametrize('use_kernel', [True, False])
def test_batch_norms_after_kernel_convolutions_fold_into_their_scale_and_bias(tmp_path,
                                                                              use_kernel):
    if use_kernel and ops is None:
        pytest.skip('no C++ compiler')
    torch.manual_seed(0)
    swap = ModuleSwap(w_bits=4, a_bits=4, overrides=[dict(pattern='seq.2', w_bits=1, a_bits=1)])
    model = swap(ConvNormNet())
    _random_statistics(model)
    model.eval()
    x = torch.randn(4, 3, 10, 10)
    model(x)                                            # initialises the steps
    path = tmp_path / 'bn.safetensors'
    export_quantized(model, path)
    folded, report = build_runtime_model(swap(ConvNormNet()), path, use_kernel=use_kernel)
    kept, kept_report = build_runtime_model(swap(ConvNormNet()), path, use_kernel=use_kernel,
                                            fold_batch_norm=False)
    assert report.folded == [('block.conv', 'block.bn'), ('seq.0', 'seq.1'), ('seq.2', 'seq.3')]
    assert kept_report.folded == []
    assert isinstance(folded.block.bn, nn.Identity) and not folded.block.with_norm
    assert isinstance(folded.seq[1], nn.Identity) and isinstance(folded.seq[3], nn.Identity)
    assert isinstance(folded.late.bn, nn.BatchNorm2d)   # after the activation: left
    assert isinstance(folded.seq[0], IntConv2d) and folded.seq[0].depthwise
    assert isinstance(folded.seq[2], BinaryConv2d)
    # layer by layer on the same input: the conv with its BN folded gives conv then BN up to
    # float rounding (a wrong sign, mean or variance would move values by units)
    with torch.no_grad():
        h = torch.randn(4, 3, 10, 10)
        torch.testing.assert_close(folded.block.conv(h), kept.block.bn(kept.block.conv(h)),
                                   rtol=1e-5, atol=1e-5)
        h = torch.randn(4, 16, 10, 10)
        torch.testing.assert_close(folded.seq[0](h), kept.seq[1](kept.seq[0](h)),
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(folded.seq[2](h), kept.seq[3](kept.seq[2](h)),
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(folded(x), kept(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


@needs_kernels
@pytest.mark.parametrize('act', [(0.0, 6.0), (0.0, math.inf), (-1.0, 1.0)])
def test_the_epilogue_with_levels_gives_the_three_passes_int8(act):
    """int_epilogue_levels: the integer epilogue, a clamp (NaN kept) and the next layer's
    quantization in one pass give the int8 of int_epilogue, torch's clamp and quantize_int8 in
    turn, on int32 and float sums, rows of 16 and not, one weight-sum row or one per row."""
    g = torch.Generator().manual_seed(0)
    for m, n, rows, dtype in ((37, 70, 1, torch.int32), (64, 48, 64, torch.float32),
                              (5, 7, 5, torch.float32)):
        acc = torch.randint(-3000, 3000, (m, n), generator=g).to(dtype)
        if dtype == torch.float32:
            acc[1, 2] = float('nan')
        ws, scale = torch.randn(rows, n, generator=g), torch.rand(n, generator=g) * 5e-3
        bias = torch.randn(n, generator=g)
        y = ops.int_epilogue(acc, 0.7, ws, scale, bias, False)
        lo, hi = act
        expected = ops.quantize_int8(torch.clamp(y, lo, hi) if hi < math.inf else F.relu(y),
                                     0.02, 3.0, -128, 127, 5)
        got = ops.int_epilogue_levels(acc, 0.7, ws, scale, bias, lo, hi, 0.02, 3.0, -128, 127, 5)
        assert got.dtype == torch.int8 and torch.equal(got, expected)
    with pytest.raises(RuntimeError, match=r'int_epilogue_levels: weight_sum must be \(R, N\)'):
        ops.int_epilogue_levels(acc, 0.7, ws[:, :3], scale, bias, *act, 0.02, 3.0, -128, 127, 5)


class ChainNet(nn.Module):
    """Integer layers whose outputs reach the next through a clamp: ConvModules in a Sequential
    (conv, BN, ReLU6 -> conv), an mmdet inverted residual block (expansion, depthwise, linear),
    an mmcv FFN (fc1, ReLU, dropout, fc2), and a pair that must not chain (GELU between)."""

    def __init__(self):
        from mmcv.cnn import ConvModule
        from mmcv.cnn.bricks.transformer import FFN
        from mmdet.models.layers import InvertedResidual
        super().__init__()
        bn = dict(type='BN')
        self.seq = nn.Sequential(
            ConvModule(3, 16, 3, padding=1, norm_cfg=bn, act_cfg=dict(type='ReLU6')),
            ConvModule(16, 24, 1, norm_cfg=bn, act_cfg=dict(type='ReLU')))
        self.block = InvertedResidual(24, 24, 72, stride=1, norm_cfg=bn,
                                      act_cfg=dict(type='ReLU6'))
        self.ffn = FFN(24, 70, act_cfg=dict(type='ReLU'), ffn_drop=0.1)
        self.gelu = nn.Sequential(nn.Linear(24, 40), nn.GELU(), nn.Linear(40, 5))

    def forward(self, x):
        x = self.block(self.seq(x)).mean((2, 3))
        return self.gelu(self.ffn(x))


@pytest.mark.skipif(ops is None, reason='no C++ compiler')
def test_integer_layers_hand_on_int8_levels_through_a_clamp_with_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    swap = ModuleSwap(w_bits=4, a_bits=4)
    model = swap(ChainNet())
    _random_statistics(model)
    x = torch.randn(4, 3, 9, 9)
    model.eval()(x)                                     # initialises the steps
    path = tmp_path / 'chain.safetensors'
    export_quantized(model, path)
    chained, report = build_runtime_model(swap(ChainNet()), path)
    plain, plain_report = build_runtime_model(swap(ChainNet()), path, chain_integer=False)
    assert report.chains == [('seq.0.conv', 'seq.1.conv'),
                             ('block.expand_conv.conv', 'block.depthwise_conv.conv'),
                             ('block.depthwise_conv.conv', 'block.linear_conv.conv'),
                             ('ffn.layers.0.0', 'ffn.layers.1')]
    assert plain_report.chains == [] and plain.seq[0].with_activation
    assert not chained.seq[0].with_activation and not chained.block.expand_conv.with_activation
    assert not chained.block.depthwise_conv.with_activation
    assert isinstance(chained.ffn.layers[0][1], nn.Identity)
    assert isinstance(chained.gelu[1], nn.GELU)        # no clamp: not chained
    assert chained.seq[0].conv.levels_for[:2] == (0.0, 6.0)
    assert chained.ffn.layers[0][0].levels_for[:2] == (0.0, math.inf)
    with torch.no_grad():
        assert chained.seq[0].conv(x).dtype == torch.int8
        # the levels handed on are the next layer's quantization of the clamped floats
        levels = chained.seq[0].conv(x)
        expected = plain.seq[1].conv.quantize(F.relu6(plain.seq[0].conv(x)))
        assert torch.equal(levels, expected)
        # and the depthwise kernel's, from the expansion's levels, the projection's
        block, plain_block, y = chained.block, plain.block, plain.seq(x)
        levels = block.depthwise_conv.conv(block.expand_conv(y))
        expected = plain_block.linear_conv.conv.quantize(
            plain_block.depthwise_conv(plain_block.expand_conv(y)))
        assert levels.dtype == torch.int8 and torch.equal(levels, expected)
        assert block.depthwise_conv.conv.gemm == 'depthwise'
        assert torch.equal(block(y), plain_block(y))
        for _ in range(2):
            x = torch.randn(4, 3, 9, 9)
            assert torch.equal(chained(x), plain(x))
        # without the kernels the chained layers hand on the same levels (torch's operations)
        for model in (chained, plain):
            for module in model.modules():
                if hasattr(module, 'use_kernel'):
                    module.use_kernel = False
        assert torch.equal(chained(x), plain(x))
    # a norm left between a convolution and its activation, or a dropout that is training,
    # keeps the layers apart
    _, kept = build_runtime_model(swap(ChainNet()), path, fold_batch_norm=False)
    assert kept.chains == [('ffn.layers.0.0', 'ffn.layers.1')]
    unchained, _ = build_runtime_model(swap(ChainNet()), path, chain_integer=False)
    unchained.ffn.layers[0][2].train()
    assert ('ffn.layers.0.0', 'ffn.layers.1') not in chain_integer_layers(unchained)


def conv_chain_net():
    """3 x 3 ConvModules in a row (dense, grouped, strided): oneDNN's int8 convolutions."""
    from mmcv.cnn import ConvModule
    bn = dict(type='BN')
    return nn.Sequential(
        ConvModule(3, 16, 3, padding=1, norm_cfg=bn, act_cfg=dict(type='ReLU6')),
        ConvModule(16, 16, 3, padding=1, groups=4, norm_cfg=bn, act_cfg=dict(type='ReLU')),
        ConvModule(16, 8, 3, stride=2, padding=1, norm_cfg=bn, act_cfg=None))


@pytest.mark.skipif(ops is None or not onednn_int8_conv_sums_exact(),
                    reason='no C++ compiler, or no exact oneDNN int8 convolution here')
@pytest.mark.parametrize('bits', [8, 4])
def test_convolutions_on_onednn_hand_on_levels_in_turn(tmp_path, bits):
    """Chained 3 x 3 layers on oneDNN's int8 convolution take their levels (q - Qn) from the
    layer before and hand on their own: the same outputs as unchained and as torch._int_mm /
    float32 convolutions, bit for bit."""
    torch.manual_seed(0)
    swap = ModuleSwap(w_bits=bits, a_bits=bits)
    model = swap(conv_chain_net())
    _random_statistics(model)
    x = torch.randn(3, 3, 11, 10)
    model.eval()(x)
    path = tmp_path / 'convs.safetensors'
    export_quantized(model, path)
    chained, report = build_runtime_model(swap(conv_chain_net()), path)
    plain, _ = build_runtime_model(swap(conv_chain_net()), path, chain_integer=False)
    other, other_report = build_runtime_model(swap(conv_chain_net()), path,
                                              int8_backend='int_mm')
    assert report.gemms == {'onednn': 3}
    assert other_report.gemms == {'int_mm': 2, 'float32': 1}
    assert report.chains == [('0.conv', '1.conv'), ('1.conv', '2.conv')]
    assert chained[0].conv.levels_for[2].levels_offset == chained[1].conv.qn
    with torch.no_grad():
        assert chained[0].conv(x).dtype == torch.int8
        out = chained(x)
        assert torch.equal(out, plain(x)) and torch.equal(out, other(x))


@pytest.mark.skipif(ops is None, reason='no C++ compiler')
def test_linear_layers_in_a_row_hand_on_levels_to_onednn_and_in_turn(tmp_path):
    """8 bits, three linear layers in a row: the second (400 outputs: oneDNN's int8 linear where
    this torch has it, whose input levels are q - Qn) takes its levels from the first and hands
    its own on to the third."""
    def net():
        return nn.Sequential(nn.Linear(24, 40), nn.ReLU6(), nn.Dropout(0.1), nn.Linear(40, 400),
                             nn.ReLU(), nn.Linear(400, 5))
    torch.manual_seed(0)
    swap = ModuleSwap(w_bits=8, a_bits=8)
    model = swap(net()).eval()
    x = torch.randn(16, 24)
    model(x)
    export_quantized(model, tmp_path / 'mlp.safetensors')
    backend = 'onednn' if onednn_int8_sums_exact() else 'int_mm'
    chained, report = build_runtime_model(swap(net()), tmp_path / 'mlp.safetensors',
                                          int8_backend=backend)
    plain, _ = build_runtime_model(swap(net()), tmp_path / 'mlp.safetensors', chain_integer=False,
                                   int8_backend=backend)
    assert report.chains == [('0', '3'), ('3', '5')]
    assert chained[3].gemm == backend
    assert chained[0].levels_for[2].levels_offset == (chained[3].qn if chained[3].gemm == 'onednn'
                                                      else chained[3].offset)
    with torch.no_grad():
        assert torch.equal(chained(x), plain(x))
        if chained[3].gemm == 'onednn':     # its levels are q - Qn: not for quantize
            with pytest.raises(ValueError, match='q - Qn'):
                chained[3].accumulate(chained[0](x))


def test_runtime_keeps_layers_no_kernel_computes_exactly_and_says_why(tmp_path, monkeypatch):
    from mmext.quant import runtime as runtime_module
    torch.manual_seed(0)

    def net():
        return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.Conv2d(8, 8, 1))
    swap = ModuleSwap(w_bits=4, a_bits=4, overrides=[dict(pattern='1', w_bits=1, a_bits=32)])
    model = swap(net()).train()
    model(torch.randn(2, 4, 6, 6))
    export_quantized(model.eval(), tmp_path / 'n.safetensors')
    runtime, report = build_runtime_model(swap(net()), tmp_path / 'n.safetensors')
    assert dict(report.kept()).keys() == {'1'} and 'Identity' in dict(report.kept())['1']
    route = 'onednn' if onednn_int8_conv_sums_exact() else 'float32'
    assert isinstance(runtime[0], IntConv2d) and runtime[0].gemm == route
    assert report.gemms == {route: 1}
    assert isinstance(runtime[1], QConv2d)
    # a grouped convolution whose sums float32 could round stays fake-quantized, and says so
    bound = grouped_sums_bound(runtime[0].weight_float, -8, 7, 0)
    monkeypatch.setattr(runtime_module, '_FLOAT_EXACT', bound - 1)
    runtime, report = build_runtime_model(swap(net()), tmp_path / 'n.safetensors')
    assert isinstance(runtime[0], QConv2d)
    assert dict(report.kept())['0'] == (f'groups=2: its sums can reach {bound}, beyond 2^24 '
                                         '(float32 would round them)')
    largest = torch.full((8, 2, 3, 3), -8, dtype=torch.int8)      # 8 * 8 * 18 = 1152 >= bound
    with pytest.raises(ValueError, match='groups=2.*sums can reach 1152'):
        IntConv2d(largest, torch.ones(8), None, runtime[0].a_quantizer, (1, 1), (1, 1), (1, 1),
                  groups=2)


class AttentionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.attn(x, x, x)[0])


@needs_kernels
def test_kept_attention_fake_quantizes_in_one_pass_with_the_same_values(tmp_path, monkeypatch):
    """8-bit attention has no kernel and stays fake-quantized: its LSQ+ quantizers run the
    compiled one-pass fake quantization (never torch.compile), whose values equal the eager
    formula's, so the attention's output is the fake-quantized model's, bit for bit."""
    torch.manual_seed(0)
    swap = ModuleSwap(w_bits=8, a_bits=8, attn_bits=8, skip=['head'])
    model = swap(AttentionNet()).train()
    x = torch.randn(3, 20, 32)
    model(x)
    export_quantized(model.eval(), tmp_path / 'a.safetensors')
    runtime, report = build_runtime_model(swap(AttentionNet()), tmp_path / 'a.safetensors')
    (name, why), = [(n, w) for n, w in report.kept() if 'attention quantizers' in w]
    assert why.endswith('4 of its 4 fake-quantize in one compiled pass (same values)'), why
    attention = runtime.get_submodule(name)
    quantizers = [attention.q_quantizer, attention.k_quantizer, attention.v_quantizer,
                  attention.prob_quantizer]
    assert all(q.fused == 'kernel' for q in quantizers)
    from mmext.quant import fake_quantize_kernel
    from mmext.quant import quantizers as quantizers_module
    passes = []
    one_pass = fake_quantize_kernel.kernel_fake_quantize
    monkeypatch.setattr(fake_quantize_kernel, 'kernel_fake_quantize',
                        lambda *args: passes.append(1) or one_pass(*args))
    monkeypatch.setattr(quantizers_module, 'compiled_fake_quantize', None)   # never called
    q = torch.randn(3, 4, 20, 8)
    with torch.no_grad():
        eager = model.get_submodule(name)
        for fast, slow in zip(quantizers, [eager.q_quantizer, eager.k_quantizer,
                                           eager.v_quantizer, eager.prob_quantizer]):
            assert torch.equal(fast(q), slow(q))
            assert torch.equal(fast(q.transpose(2, 3)), slow(q.transpose(2, 3)))
            assert torch.equal(fast(q.double()), slow(q.double()))   # no pass: eager
        assert len(passes) == 8
        assert torch.equal(attention(q, q, q), eager(q, q, q))
        assert len(passes) == 12
    # without the kernels (use_kernel=False) the quantizers stay eager
    _, report = build_runtime_model(swap(AttentionNet()), tmp_path / 'a.safetensors',
                                    use_kernel=False)
    assert not any('compiled pass' in why for _, why in report.kept())


@needs_kernels
def test_grouped_convolutions_are_exact_at_model_sizes():
    """At a MobileNetV2 depthwise layer's size (144 channels at 56 x 56, channels-last, as the
    runtime hands it on) and a grouped one, torch's float32 convolution, whichever algorithm it
    picks for the size, gives the float64 reference's sums and floats bit for bit."""
    g = torch.Generator().manual_seed(0)
    quantizer = LSQPlusQuantizer(bits=8)
    x = torch.randn(2, 144, 56, 56, generator=g).contiguous(memory_format=torch.channels_last)
    quantizer.eval()(x)
    for groups, per_group in ((144, 1), (4, 36)):
        ints = torch.randint(-128, 128, (144, per_group, 3, 3), generator=g, dtype=torch.int8)
        args = (ints, torch.rand(144, generator=g) * 1e-2, torch.randn(144, generator=g),
                quantizer, (1, 1), (1, 1), (1, 1))
        fast, reference = (IntConv2d(*args, use_kernel=use, groups=groups) for use in (True, False))
        assert torch.equal(fast.accumulate(x), reference.accumulate(x))
        assert torch.equal(fast(x), reference(x))
        signs, scale = torch.where(ints >= 0, 1.0, -1.0), torch.rand(144, generator=g)
        fast, reference = (BinaryConv2d(signs, scale, None, 1, 1, 1, use_kernel=use,
                                        groups=groups) for use in (True, False))
        assert torch.equal(fast.dots(x), reference.dots(x))
        assert torch.equal(fast(x), reference(x))

@needs_kernels
def test_grouped_convolutions_refuse_a_lowered_float32_precision():
    """Exact float32 sums need full-precision float32 convolutions: a process that lets oneDNN
    use TF32 or bfloat16 gets an error naming the setting, not rounded sums, from a grouped
    layer on float32 convolutions; a depthwise layer runs the compiled depthwise kernel and an
    integer grouped layer oneDNN's int8 convolution (where exact here), which that setting
    does not touch (the same floats)."""
    quantizer = LSQPlusQuantizer(bits=4)
    quantizer.eval()(torch.randn(2, 4, 5, 5))
    conv_args = (torch.ones(4, 2, 3, 3), torch.ones(4), None, quantizer, (1, 1), (1, 1), (1, 1))
    layer = IntConv2d(*conv_args, groups=2, backend='int_mm')
    binary = BinaryConv2d(_signs(4, 2, 3, 3), torch.ones(4), None, 1, 1, 1, groups=2)
    untouched = (IntConv2d(torch.ones(4, 1, 3, 3), torch.ones(4), None, quantizer, (1, 1),
                           (1, 1), (1, 1), groups=4),
                 BinaryConv2d(_signs(4, 1, 3, 3), torch.ones(4), None, 1, 1, 1, groups=4))
    if onednn_int8_conv_sums_exact():
        untouched += (IntConv2d(*conv_args, groups=2), )
    x = torch.randn(2, 4, 5, 5)
    layer(x), binary(x)
    expected = [module(x) for module in untouched]
    assert float32_convs_exact()
    mkldnn = torch.backends.mkldnn
    with mkldnn.flags(enabled=mkldnn.enabled, fp32_precision='bf16'):   # restored on exit
        assert not float32_convs_exact()
        for module in (layer, binary):
            with pytest.raises(RuntimeError, match="fp32_precision.*'ieee'"):
                module(x)
        for module, out in zip(untouched, expected):
            assert torch.equal(module(x), out)
    assert float32_convs_exact()


def test_missing_compiler_falls_back_with_one_warning(monkeypatch, tmp_path):
    from mmext.quant import kernels
    monkeypatch.setattr(kernels, '_STATE', {})
    monkeypatch.setattr(kernels, 'extension_dir', lambda: tmp_path / 'none')
    monkeypatch.setenv('CXX', str(tmp_path / 'no-such-compiler'))
    monkeypatch.setenv('PATH', str(tmp_path))                     # no g++, no ninja
    with pytest.warns(UserWarning, match='pure-torch reference') as caught:
        assert kernels.lowbit_ops() is None
        assert kernels.lowbit_ops() is None                      # decided once
    assert len(caught) == 1
    assert 'Ninja is required' in str(caught[0].message)          # the cause, named
    w = _signs(9, 70)
    x = torch.randn(4, 70)
    layer = BinaryLinear(w, torch.ones(9))                       # builds on the reference
    assert layer.ops is None
    assert torch.equal(layer.dots(x), (torch.where(x >= 0, 1.0, -1.0) @ w.t()).int())


def test_int8_backend_is_named_copied_and_falls_back(monkeypatch):
    """An unknown backend is named; a layer that has packed oneDNN's weights deep-copies (the
    packing is left behind and redone); where the probe fails, 'auto' runs torch._int_mm and
    'onednn' says why it cannot run."""
    import copy

    from mmext.quant import runtime
    g = torch.Generator().manual_seed(2)
    quantizer = LSQPlusQuantizer(bits=8)
    x = torch.randn(12, 30, generator=g)
    quantizer.eval()(x)
    wide = IntLinear.ONEDNN_MIN_OUT
    ints = torch.randint(-127, 128, (wide, 30), generator=g, dtype=torch.int8)
    args = (ints, torch.rand(wide, generator=g) * 1e-2, torch.randn(wide, generator=g), quantizer)
    with pytest.raises(ValueError, match=r"one of \('auto', 'int_mm', 'onednn'\), got 'amx'"):
        IntLinear(*args, backend='amx')
    layer, plain = IntLinear(*args), IntLinear(*args, backend='int_mm')
    expected = layer(x)
    assert torch.equal(copy.deepcopy(layer)(x), expected) and torch.equal(plain(x), expected)
    monkeypatch.setattr(runtime, 'onednn_int8_sums_exact', lambda: False)
    assert IntLinear(*args).gemm == 'int_mm'
    with pytest.raises(ValueError, match='no oneDNN int8 linear with exact sums'):
        IntLinear(*args, backend='onednn')
    # a convolution: oneDNN's packing copies the same way; without its probe a 3 x 3 layer
    # runs torch._int_mm, a grouped one its float32 convolution
    images = torch.randn(2, 8, 9, 9, generator=g)
    quantizer.eval()(images)
    conv_args = (torch.randint(-127, 128, (16, 8, 3, 3), generator=g, dtype=torch.int8),
                 torch.rand(16, generator=g) * 1e-2, None, quantizer, (1, 1), (1, 1), (1, 1))
    grouped_args = (conv_args[0][:, :2], *conv_args[1:])
    if runtime.onednn_int8_conv_sums_exact():
        conv = IntConv2d(*conv_args)
        expected = conv(images)
        assert conv.gemm == 'onednn' and torch.equal(copy.deepcopy(conv)(images), expected)
    monkeypatch.setattr(runtime, 'onednn_int8_conv_sums_exact', lambda: False)
    assert IntConv2d(*conv_args).gemm == 'int_mm'
    assert IntConv2d(*grouped_args, groups=4).gemm == 'float32'
    with pytest.raises(ValueError, match='no oneDNN int8 convolution with exact sums'):
        IntConv2d(*grouped_args, backend='onednn', groups=4)


@pytest.mark.parametrize('k,stride,pad,dil,size,c,groups,why', [
    # geometries on which oneDNN's int8 convolution returned wrong sums (or crashed) in a
    # second reader's comparison with float64: taps of an output all in the padding, and one
    # input channel per group with unequal strides (an output one pixel wide)
    ((2, 2), (1, 1), (1, 1), (2, 2), (5, 1), 8, 1, 'dilation'),
    ((3, 3), (1, 2), (0, 0), (1, 1), (8, 4), 1, 1, 'unequal strides'),
    ((3, 3), (1, 2), (1, 1), (1, 1), (8, 2), 4, 4, 'unequal strides'),
    ((1, 1), (2, 2), (1, 1), (1, 1), (3, 2), 16, 1, 'padding'),
    ((3, 1), (1, 1), (1, 1), (1, 1), (6, 5), 8, 1, 'padding')])
def test_onednn_convolution_is_kept_off_the_geometries_it_gets_wrong(k, stride, pad, dil, size,
                                                                     c, groups, why):
    """'auto' keeps such a layer on torch._int_mm / float32 (the exact sums), 'onednn' refuses
    it naming the geometry; an admitted geometry runs on oneDNN."""
    g = torch.Generator().manual_seed(3)
    quantizer = LSQPlusQuantizer(bits=8)
    x = torch.randn(2, c, *size, generator=g)
    quantizer.eval()(x)
    n = 2 * groups
    ints = torch.randint(-20, 21, (n, c // groups, *k), generator=g, dtype=torch.int8)
    args = (ints, torch.full((n, ), 1e-2), None, quantizer, stride, pad, dil)
    layer = IntConv2d(*args, groups=groups, depthwise_kernel=False)
    assert layer.gemm == ('int_mm' if groups == 1 else 'float32')
    levels = layer.float_levels(x).double()
    truth = F.conv2d(levels, ints.double(), None, stride, pad, dil, groups)
    with torch.no_grad():
        sums = layer.accumulate(x).double().view(2, *truth.shape[2:], n).permute(0, 3, 1, 2)
    assert torch.equal(sums, truth)
    if onednn_int8_conv_sums_exact():
        with pytest.raises(ValueError, match=f'oneDNN does not take its {why}'):
            IntConv2d(*args, backend='onednn', groups=groups, depthwise_kernel=False)
        admitted = IntConv2d(ints, torch.full((n, ), 1e-2), None, quantizer, (1, 1),
                             (0, 0), (1, 1), groups=groups, depthwise_kernel=False,
                             backend='onednn')
        assert admitted.gemm == 'onednn'


def test_one_input_feature_accumulates_exactly():
    """K = 1 (a linear layer of one input feature, a 1 x 1 convolution of one channel): the
    weight's (1, N) rows keep strides (N, 1), on which torch._int_mm reads the right elements."""
    g = torch.Generator().manual_seed(4)
    quantizer = LSQPlusQuantizer(bits=8)
    x = torch.randn(37, 1, generator=g)
    quantizer.eval()(x)
    ints = torch.randint(-127, 128, (5, 1), generator=g, dtype=torch.int8)
    linear = IntLinear(ints, torch.full((5, ), 1e-2), None, quantizer, backend='int_mm')
    assert linear.weight_t.stride() == (5, 1)
    truth = linear.float_levels(x).double() @ ints.double().t()
    assert torch.equal(linear.accumulate(x).double(), truth)
    images = x.view(1, 1, 37, 1)
    conv = IntConv2d(ints.view(5, 1, 1, 1), torch.full((5, ), 1e-2), None, quantizer, (1, 1),
                     (0, 0), (1, 1), backend='int_mm')
    assert torch.equal(conv.accumulate(images).double(), truth)


def test_integer_layers_loaded_with_new_weights_drop_what_they_derived():
    """load_state_dict with other weights: oneDNN's packing and the per-size valid-tap sums of
    the old weights are dropped, so the layer computes as one built with the new ones."""
    g = torch.Generator().manual_seed(5)
    quantizer = LSQPlusQuantizer(bits=8)
    x = torch.randn(2, 8, 7, 6, generator=g)
    quantizer.eval()(x)

    def conv(ints):
        return IntConv2d(ints, torch.full((16, ), 1e-2), None, quantizer, (1, 1), (1, 1),
                         (1, 1))
    old = torch.randint(-20, 21, (16, 8, 3, 3), generator=g, dtype=torch.int8)
    new = torch.randint(-20, 21, (16, 8, 3, 3), generator=g, dtype=torch.int8)
    layer, fresh = conv(old), conv(new)
    with torch.no_grad():
        layer(x)                                    # packs and caches from the old weights
        layer.load_state_dict(fresh.state_dict())
        assert torch.equal(layer(x), fresh(x))


def test_runtime_layers_can_be_copied():
    import copy
    layer = BinaryLinear(_signs(9, 70), torch.rand(9) + 0.5)
    x = torch.randn(4, 70)
    assert torch.equal(copy.deepcopy(layer)(x), layer(x))


@needs_kernels
def test_the_kernel_operands_are_the_current_buffers():
    """The kernel layers (binary, a binary pair, 8-bit) read the tensors they hand a kernel
    from their buffers on every call: a reassigned or re-registered buffer, a state dict loaded
    in place or by assignment (after a pickle too), a conversion and ``functional_call``'s
    swapped-in buffers all reach the kernel (a stale operand would give the old outputs)."""
    import copy
    import pickle

    from torch.func import functional_call
    layer = BinaryLinear(_signs(9, 70), torch.rand(9) + 0.5, torch.randn(9), torch.randn(1))
    x = torch.randn(4, 70)
    with torch.no_grad():
        out, dots = layer(x), layer.dots(x).float()
        assert layer.kernel_operands()[0] is layer.weight_words
        layer.scale = layer.scale * 2                           # reassigned
        assert torch.allclose(layer(x), 2 * out - layer.bias[:9], atol=1e-5)
        layer.register_buffer('scale', layer.scale / 2)         # re-registered
        assert torch.equal(layer(x), out)
        doubled = {'scale': layer.scale * 2}
        assert torch.allclose(functional_call(layer, doubled, (x, )), 2 * out - layer.bias[:9],
                              atol=1e-5)
        assert torch.equal(layer(x), out)                       # the module's own again
        layer.bias.add_(1.0)                                    # in place
        assert torch.allclose(layer(x), out + 1, atol=1e-5)
        state = {k: v.clone() for k, v in layer.state_dict().items()}
        state['bias'].zero_()
        for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
            twin.load_state_dict(state)                         # in place, a single threshold
            assert torch.equal(twin(x), dots * layer.scale[:9])
        layer.load_state_dict(state, assign=True)
        assert layer.kernel_operands()[3] is layer.bias
        assert torch.equal(layer(x), dots * layer.scale[:9])
        layer.double()                                          # converted: float64 buffers
        assert layer.kernel_operands()[2] is layer.scale and layer.scale.dtype == torch.float64
        with pytest.raises(RuntimeError, match='float32'):      # the new float64 ones
            layer(x)
    pair_first = BinaryLinear(_signs(20, 30), torch.full((20, ), 0.5), torch.zeros(20))
    pair_second = BinaryLinear(_signs(8, 20, seed=4), torch.ones(8), None, torch.zeros(20))
    pair = BinaryLinearPair(pair_first, nn.GELU(), pair_second,
                            *sign_thresholds(pair_first, nn.GELU(), pair_second, ops))
    x = torch.randn(5, 30)
    with torch.no_grad():
        before = pair(x)
        pair.second.bias = pair.second.bias + 1                 # a layer of the pair
        assert torch.allclose(pair(x), before + 1)
    depthwise = BinaryConv2d(_signs(6, 1, 3, 3), torch.rand(6) + 0.1, torch.zeros(6), 1, 1, 1,
                             torch.zeros(1), groups=6)
    image = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        before = depthwise(image)
        depthwise.load_state_dict({**depthwise.state_dict(), 'bias': torch.ones(depthwise.npad)})
        assert torch.allclose(depthwise(image), before + 1)
    quantizer = LSQPlusQuantizer(bits=8)
    quantizer.eval()(torch.randn(4, 10))
    integer = IntLinear(torch.randint(-7, 8, (6, 10), dtype=torch.int8), torch.full((6, ), 0.01),
                        torch.zeros(6), quantizer)
    x = torch.randn(4, 10)
    with torch.no_grad():
        before = integer(x)
        integer.bias = integer.bias + 1                         # the epilogue's
        assert torch.allclose(integer(x), before + 1)
        integer.weight_t = integer.weight_t.neg().contiguous()  # the GEMM's (and its sums)
        integer.weight_sum = integer.weight_sum.neg()
        assert torch.allclose(integer(x), -before + 1, atol=1e-5)


def test_wrong_input_shape_is_named():
    with pytest.raises(ValueError, match=r'expects \(\.\.\., 70\)'):
        BinaryLinear(_signs(9, 70), torch.ones(9))(torch.randn(2, 71))
    with pytest.raises(ValueError, match=r'expects \(B, 3, H, W\)'):
        BinaryConv2d(_signs(4, 3, 3, 3), torch.ones(4), None, 1, 1, 1)(torch.randn(1, 4, 5, 5))


def test_a_tampered_export_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file
    torch.manual_seed(0)
    swap = ModuleSwap(w_bits=4, a_bits=4)
    model = swap(TinyNet()).train()
    model(torch.randn(2, 3, 8, 8))
    path = tmp_path / 'tiny.safetensors'
    export_quantized(model.eval(), path)
    build_runtime_model(swap(TinyNet()), path)                     # the intact file loads
    with safe_open(str(path), 'pt') as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors['fc1.weight.int'][0, 0] = 7 if tensors['fc1.weight.int'][0, 0] != 7 else 6
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ValueError, match='changed after export.*export the checkpoint again'):
        build_runtime_model(swap(TinyNet()), path)


class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x)


@needs_kernels
@pytest.mark.parametrize('act, threshold', [(nn.GELU(), 'channel'), (nn.ReLU(), 'one'),
                                            (nn.Identity(), None), (nn.GELU(), 'far')])
def test_a_binary_pair_gives_the_signs_of_the_layers_in_turn(act, threshold):
    """fc1 -> activation -> fc2 with fc2's signs from fc1's dots: the output of the three run in
    turn on the kernels, bit for bit (odd sizes: K = 100, 70 channels between). 'far':
    thresholds far from the activation's values, so that some channels are all -1 or all +1."""
    g = torch.Generator().manual_seed(3)
    k, hidden, n = 100, 70, 33
    fc1 = BinaryLinear(_signs(hidden, k, seed=1), torch.rand(hidden, generator=g) * 0.02 + 1e-3,
                       torch.randn(hidden, generator=g) * 0.3)
    t = {'channel': torch.randn(hidden, generator=g) * 0.2, 'one': torch.tensor([0.05]),
         None: None, 'far': torch.randn(hidden, generator=g) * 3}[threshold]
    fc2 = BinaryLinear(_signs(n, hidden, seed=2), torch.rand(n, generator=g) + 0.1,
                       torch.randn(n, generator=g), t)
    between = nn.Sequential(act, nn.Dropout(0.1)).eval()
    folded = sign_thresholds(fc1, between, fc2, ops)
    assert not isinstance(folded, str), folded
    pair = BinaryLinearPair(fc1, between, fc2, *folded)
    x = torch.randn(3, 41, k, generator=g)
    x[0, 0, :5] = 0.0
    with torch.no_grad():
        expected = fc2(act(fc1(x)))
        assert torch.equal(pair(x), expected)
        # the thresholds decide every sign: the words equal packing the activation's output
        words = ops.binary_linear_signs(fc1._pack(x.reshape(-1, k)), fc1.weight_words, k,
                                        *folded, hidden)
        assert torch.equal(words, fc2._pack(act(fc1(x)).reshape(-1, hidden)))
    if threshold == 'far':
        below, above = folded
        assert ((below[:hidden] >= k) | (above[:hidden] > k)).any()   # all +1 or all -1


@needs_kernels
def test_a_pair_is_fused_only_where_the_signs_fold_and_says_why():
    """A Sequential(Sequential(fc1, GELU, Dropout), fc2, Dropout), as mmcv's FFN, is fused; a
    sine between the layers is not an elementwise module it knows, and stays; a sine passed to
    the fold is refused with the number of channels it breaks."""
    fc1 = BinaryLinear(_signs(20, 30), torch.full((20, ), 0.5), torch.zeros(20))
    fc2 = BinaryLinear(_signs(8, 20, seed=4), torch.ones(8), None, torch.zeros(20))
    mlp = nn.Sequential(nn.Sequential(fc1, nn.GELU(), nn.Dropout(0.0)), fc2, nn.Dropout(0.0))
    x = torch.randn(5, 30)
    with torch.no_grad():
        expected = mlp(x)
        assert fuse_binary_pairs(mlp) == [('0', True, '')]
        assert isinstance(mlp[0], BinaryLinearPair) and isinstance(mlp[1], nn.Identity)
        assert torch.equal(mlp(x), expected)
    wavy = nn.Sequential(fc1, Sine(), fc2)
    assert fuse_binary_pairs(wavy) == [] and isinstance(wavy[0], BinaryLinear)
    why = sign_thresholds(fc1, Sine(), fc2, ops)
    assert isinstance(why, str) and 'channels' in why and 'Sine' in why


@needs_kernels
@pytest.mark.parametrize('swap', [dict(), dict(learnable_scale=False, qk_norm=False)],
                         ids=['bivit', 'binary-baseline'])
def test_runtime_bivit_predicts_the_fake_quantized_labels(tmp_path, swap):
    """A tiny Bi-ViT (binary linears, binary patch embedding, binary attention), as Bi-ViT and
    as its binary baseline (no learnable scales, no q / k norm): the runtime model's logits and
    labels against the fake-quantized model's. With an even number of keys and v's zero point
    at 0, as initialised, many of the attention's outputs are exactly 0 and meet the output
    projection's sign at its threshold; the fake-quantized model evaluates binary attention on
    integer dots as the runtime does (on a float GEMM, whose rounding left those zeros +-1e-9,
    both cases failed here)."""
    from mmengine.registry import DefaultScope

    import projects.bivit  # noqa: F401
    from mmext.registry import QUANTIZERS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS

        def build():
            torch.manual_seed(0)
            model = MODELS.build(dict(
                type='ImageClassifier',
                backbone=dict(type='VisionTransformer', img_size=24, patch_size=8,
                              arch=dict(embed_dims=64, num_layers=2, num_heads=4,
                                        feedforward_channels=130)),
                neck=None,
                head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=64)))
            return QUANTIZERS.build(dict(type='BiViTSwap', binary_patch_embed=True,
                                         **swap))(model)

        model = build().eval()
        x = torch.randn(16, 3, 24, 24)           # 9 patches and the class token: 10 keys
        with torch.no_grad():
            model(x, mode='tensor')                    # initialises the attention binarizers
            expected = model(x, mode='tensor')
        export_quantized(model, tmp_path / 'bivit.safetensors')
        runtime, report = build_runtime_model(build(), tmp_path / 'bivit.safetensors')
        unfused, _ = build_runtime_model(build(), tmp_path / 'bivit.safetensors',
                                         fuse_softmax=False, fuse_layer_norm=False)
        attention_out = []
        runtime.backbone.layers[0].attn.scaled_dot_product_attention.register_forward_hook(
            lambda module, args, out: attention_out.append(out))
        with torch.no_grad():
            got = runtime(x, mode='tensor')
            # P's signs, and q's and k's after their LayerNorms, fused or not
            assert torch.equal(unfused(x, mode='tensor'), got)
    assert int((attention_out[0] == 0).sum()) > 100         # the case the exact sums decide
    attention = runtime.backbone.layers[0].attn.scaled_dot_product_attention
    assert attention._fuses_softmax() == AVX512
    assert not unfused.backbone.layers[0].attn.scaled_dot_product_attention._fuses_softmax()
    heads = torch.randn(16, 4, 10, 16)                      # Bi-ViT's HeadLayerNorm, fused
    fusable = attention._fusable_norm(heads, attention.q_transform, 'q')
    assert (fusable is not None) == (AVX512 and swap == {})
    # patch embedding + 2 x (qkv, proj, fc1, fc2), and both attentions; both MLPs' fc1 -> fc2
    assert report.counts() == {'binary': 9, 'binary attention': 2}
    assert report.pairs == [(f'backbone.layers.{i}.ffn.layers.0', True, '') for i in range(2)]
    assert isinstance(runtime.backbone.layers[0].ffn.layers[0], BinaryLinearPair)
    assert isinstance(runtime.backbone.patch_embed.projection, BinaryConv2d)
    assert isinstance(runtime.backbone.layers[0].attn.scaled_dot_product_attention,
                      BinaryAttention)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize('use_kernel', [True, False])
def test_binary_attention_equals_the_fake_quantized_attention(use_kernel):
    if use_kernel and ops is None:
        pytest.skip('no C++ compiler')
    from mmext.quant.attention import QuantizedSDPA
    torch.manual_seed(0)
    sdpa = QuantizedSDPA.from_bits(3, 1).eval()
    q, k, v = (torch.randn(2, 3, 37, 70) for _ in range(3))   # odd token count and head size
    sdpa(q, k, v)                                             # initial scales
    for quantizer in (sdpa.q_quantizer, sdpa.k_quantizer, sdpa.v_quantizer):
        quantizer.zero_point.data.uniform_(-0.3, 0.3)         # as after training
    expected, probs = sdpa(q, k, v, need_weights=True)
    runtime = BinaryAttention(sdpa, use_kernel)
    got, got_probs = runtime(q, k, v, need_weights=True)
    torch.testing.assert_close(got_probs, probs)              # the same binary P
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def _binary_sdpa(heads: int, dim: int, tokens: int, seed: int = 0):
    """A Bi-ViT attention core with trained-looking binarizers (zero points off 0, a step per
    head) and P's threshold near the uniform probability 1 / tokens, where most of P lies."""
    from mmext.quant.attention import QuantizedSDPA
    torch.manual_seed(seed)
    sdpa = QuantizedSDPA.from_bits(heads, 1).eval()
    q, k, v = (torch.randn(2, tokens, heads, dim).transpose(1, 2) for _ in range(3))
    sdpa(q, k, v)
    for quantizer in (sdpa.q_quantizer, sdpa.k_quantizer, sdpa.v_quantizer):
        quantizer.zero_point.data.uniform_(-0.3, 0.3)
        quantizer.scale.data.mul_(torch.rand(heads) + 0.5)
    sdpa.prob_quantizer.scale.data = (torch.rand(heads) + 1.5) / tokens    # threshold -z s
    sdpa.prob_quantizer.zero_point.data = -torch.rand(heads) * 0.5 - 0.25
    return sdpa, (q, k, v)


@needs_avx512
@pytest.mark.parametrize('masked, dim', [(False, 70), (True, 70), (False, 40), (False, 64)])
def test_fused_softmax_gives_the_unfused_sign_words(masked, dim):
    """P's words straight from q's and k's (logits never written, softmax decided in log space;
    heads of up to 64 dimensions sum the softmax from tables, larger ones by exponentials)
    equal those of torch's softmax and the packing, also when a wide margin sends most rows to
    torch (they are finished there), and so do the attention's outputs."""
    sdpa, (q, k, v) = _binary_sdpa(heads=3, dim=dim, tokens=131)
    mask = torch.rand(131, 131) > 0.3 if masked else None
    fused, unfused = BinaryAttention(sdpa), BinaryAttention(sdpa, fuse_softmax=False)
    assert fused._fuses_softmax() and not unfused._fuses_softmax()
    with torch.no_grad():
        assert torch.equal(fused(q, k, v, mask), unfused(q, k, v, mask))
        qn, kn = fused.q_transform(q), fused.k_transform(k)
        a, b = fused._operand(qn, 'q'), fused._operand(kn, 'k')
        (sq, zq), (sk, zk) = fused._step('q'), fused._step('k')
        shape, scale = (2, 3, 131, 131), sq * sk / math.sqrt(dim)
        logits = fused._product(a, b, shape, dim, zq, zk, scale)
        if masked:
            logits = logits.masked_fill(~mask, float('-inf'))
        expected = fused._operand(logits.softmax(-1), 'prob')
        for extra in (0.0, 0.05, 10.0):
            assert torch.equal(fused._prob_words(a, b, shape, dim, zq, zk, scale, mask, extra),
                               expected)
        if not masked:      # how many rows a margin leaves to torch
            undecided = [fused.ops.binary_attention_softmax_signs(
                a, b, dim, zq.float(), zk.float(), (dim * zq * zk).float(), scale.float(),
                fused.prob_scale, fused.prob_zero, extra)[1].numel() for extra in (0.0, 10.0)]
            assert undecided[0] < 0.05 * 2 * 3 * 131 and undecided[1] == 2 * 3 * 131


@needs_avx512
@pytest.mark.parametrize('dim, step', [(64, 0.3), (70, 0.3), (64, 2.0)])
def test_fused_softmax_leaves_rows_on_the_threshold_to_torch(dim, step):
    """Keys all alike and no zero-point corrections make every row's logits equal, so each
    probability is 1 / N: with P's threshold 1 / N no bit may be decided in the kernel, on the
    tables (dim <= 64, logits within +-19) or on exponentials (dim 70; logits within +-128,
    past the tables' range); with a zero point >= 0 every bit is 1."""
    g = torch.Generator().manual_seed(2)
    heads, rows, n = 2, 9, 37
    words = -(-dim // 64)
    a = torch.randint(-2 ** 62, 2 ** 62, (heads * 2, rows, words), generator=g)
    b = torch.randint(-2 ** 62, 2 ** 62, (heads * 2, 1, words), generator=g)
    if dim % 64:                                             # bits past dim are 0
        a[..., -1] &= (1 << dim % 64) - 1
        b[..., -1] &= (1 << dim % 64) - 1
    zeros, scale = torch.zeros(heads), torch.full((heads, ), step)
    args = (a, b.expand(-1, n, -1).contiguous(), dim, zeros, zeros, zeros, scale)
    _, undecided, logits = ops.binary_attention_softmax_signs(
        *args, torch.full((heads, ), 2.0 / n), torch.full((heads, ), -0.5), 0.0)
    assert undecided.tolist() == list(range(heads * 2 * rows))
    assert torch.equal(logits, logits[:, :1].expand(-1, n))
    signs, undecided, _ = ops.binary_attention_softmax_signs(
        *args, torch.full((heads, ), 2.0 / n), torch.zeros(heads), 0.0)
    assert undecided.numel() == 0 and (unpack_signs(signs.view(-1, 1), n) == 1).all()


@needs_avx512
def test_softmax_signs_leave_to_torch_what_its_rounding_could_change():
    """Rows the kernel must not decide: every probability on the threshold (a uniform row with
    threshold 1 / N), NaN, +inf, all -inf; -inf entries (masked) give 0 bits, a zero point
    >= 0 gives all ones, and every decided row is torch's."""
    g = torch.Generator().manual_seed(1)
    n = 75                                                   # two heads: G = 4 is 2 x 2
    logits = torch.randn(4, 9, n, generator=g) * 3
    logits[0, 0] = 0.5                                       # uniform: p = 1 / n everywhere
    logits[2, 1, 3] = float('nan')
    logits[2, 2, 5] = float('inf')
    logits[2, 3] = float('-inf')
    logits[2, 4, :40] = float('-inf')                        # masked entries
    scale = torch.tensor([2.0 / n, 1.0])
    zero = torch.tensor([-0.5, 0.25])                        # head 0: threshold 1 / n
    words, rows = ops.softmax_signs(logits, scale, zero, 0.0)
    assert set(rows.tolist()) == {0, 2 * 9 + 1, 2 * 9 + 2, 2 * 9 + 3}
    levels = logits.softmax(-1) / scale.repeat(2)[:, None, None] + zero.repeat(2)[:, None, None]
    expected = ops.pack_signs(levels.reshape(-1, n), None).view(4, 9, -1)
    decided = torch.ones(4 * 9, dtype=torch.bool)
    decided[rows] = False
    assert torch.equal(words.view(36, -1)[decided], expected.view(36, -1)[decided])
    assert (unpack_signs(words[2, 4], n)[:40] == -1).all()
    assert (unpack_signs(words[1], n) == 1).all() and (unpack_signs(words[3, 5:], n) == 1).all()


@needs_avx512
def test_fused_softmax_refuses_steps_it_cannot_decide_and_the_module_stays_unfused():
    """A step that is not positive, or a threshold below 1e-30, is refused by the kernel with
    the head named; the module checks the steps first and runs unfused, as it does when the
    logits are hooked."""
    logits = torch.zeros(2, 3, 5)
    with pytest.raises(RuntimeError, match="head 1 has step -1"):
        ops.softmax_signs(logits, torch.tensor([1.0, -1.0]), torch.zeros(2), 0.0)
    with pytest.raises(RuntimeError, match='below 1e-30'):
        ops.softmax_signs(logits, torch.tensor([1e-20, 1.0]), torch.tensor([-1e-20, 0.0]), 0.0)
    sdpa, (q, k, v) = _binary_sdpa(heads=3, dim=16, tokens=20)
    module = BinaryAttention(sdpa)
    assert module._fuses_softmax()
    module.prob_scale[1] *= -1                               # in place: a new buffer version
    assert not module._fuses_softmax()
    module.prob_scale[1] *= -1
    assert module._fuses_softmax()
    handle = module.logits.register_forward_hook(lambda *args: None)
    assert not module._fuses_softmax()
    handle.remove()
    assert module._fuses_softmax()


def _layer_norm(dim: int, seed: int, affine: str = 'both') -> nn.LayerNorm:
    """A LayerNorm with trained-looking affine tensors: 'both', 'weight' (no bias) or 'none'."""
    norm = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=affine != 'none',
                        bias=affine == 'both')
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if norm.weight is not None:
            norm.weight.copy_(1 + 0.3 * torch.randn(dim, generator=g))
        if norm.bias is not None:
            norm.bias.copy_(0.3 * torch.randn(dim, generator=g))
    return norm


@needs_avx512
@pytest.mark.parametrize('dim, affine, offset, scale', [
    (64, 'both', 0.0, 1.0), (64, 'both', 3.0, 1.0), (64, 'both', 0.0, 1e-4),
    (64, 'both', 0.0, 1e4), (32, 'weight', 0.5, 1.0), (17, 'none', 0.0, 1.0),
    (40, 'both', 0.0, 1.0), (1, 'both', 0.0, 1.0)])
def test_layer_norm_head_signs_equal_torch_layer_norm_then_the_packing(dim, affine, offset,
                                                                       scale):
    """Sign words straight from the strided heads (B, H, R, d) of a projection equal torch's
    LayerNorm then pack_head_signs bit for bit: heads of 1 to 64, both affine tensors, the
    weight alone or none, rows far from a zero mean, tiny and huge values, a negative step, NaN
    and inf; a wide margin sends every row to torch's LayerNorm, and on plain rows few go."""
    g = torch.Generator().manual_seed(dim)
    heads, rows = 3, 4 * 3 * 53
    x = (torch.randn(4, 53, 3, heads, dim, generator=g) * scale + offset).permute(2, 0, 3, 1, 4)[0]
    x[0, 0, 0, 0], x[1, 2, 3, -1] = float('nan'), float('inf')
    norm = _layer_norm(dim, dim, affine)
    step, zero = torch.rand(heads, generator=g) + 0.3, torch.randn(heads, generator=g) * 0.3
    step[1] *= -1
    weight, bias = (None if t is None else t.detach() for t in (norm.weight, norm.bias))
    with torch.no_grad():
        expected = ops.pack_head_signs(norm(x), step, zero)
    finished = []
    for extra in (0.0, 1e3):
        words, count = ops.layer_norm_head_signs(x, weight, bias, norm.eps, step, zero, extra)
        assert torch.equal(words, expected)
        finished.append(count)
    assert finished[1] == rows
    if (offset, scale) == (0.0, 1.0) and dim > 1:
        assert 2 <= finished[0] < 0.05 * rows            # the two rows with NaN and inf


@needs_avx512
def test_layer_norm_head_signs_on_values_that_only_rounding_decides():
    """Rows c x0 + d normalise to the same exact values (eps = 0), and a bias of minus those
    values puts every element's exact LayerNorm within rounding of the threshold: torch's
    signs there come from its rounding alone, row by row. The kernel must leave such elements
    to torch (a bound that is too tight decides some of them its own way)."""
    g = torch.Generator().manual_seed(0)
    dim, heads = 64, 2
    x0 = torch.randn(dim, generator=g, dtype=torch.float64)
    norm = _layer_norm(dim, 5)
    norm.eps = 0.0
    exact = (x0 - x0.mean()) / x0.var(unbiased=False).sqrt() * norm.weight.detach().double()
    with torch.no_grad():
        norm.bias.copy_(-exact.float())
    c = torch.rand(heads, 300, 1, generator=g, dtype=torch.float64) * 1.5 + 0.5
    d = torch.rand(heads, 300, 1, generator=g, dtype=torch.float64) * 2 - 1
    x = (c * x0 + d).float()[None]                           # (1, H, 300, 64)
    step, zero = torch.ones(heads), torch.zeros(heads)
    with torch.no_grad():
        expected = ops.pack_head_signs(norm(x), step, zero)
    words, finished = ops.layer_norm_head_signs(x, norm.weight.detach(), norm.bias.detach(), 0.0,
                                                step, zero, 0.0)
    ones = unpack_signs(expected.view(-1, 1), dim).eq(1).sum(0)
    assert ((ones > 0) & (ones < heads * 300)).sum() > 10     # rounding picks either sign
    assert torch.equal(words, expected) and finished > 0.9 * heads * 300


TINY = 2.0 ** -149                                            # the smallest subnormal


@needs_avx512
@pytest.mark.parametrize('x, weight, bias, eps, step', [
    ([-2e-21, -3e-21, 1e-21, -2e-21], [1.0] * 4,                 # variance below 2^-126, eps 0
     [0.33318397, 0.96853769, -1.66648805, 0.31506693], 0.0, 1.0),
    ([0.0, -3 * TINY, -2 * TINY, -2 * TINY, 0.0, 0.0],           # subnormal inputs
     [0.76984668, 0.76708001, 1.14887083, 0.89202374, 1.23579085, 0.62785119], None, 1e-6,
     0.30658087),
    ([1.25e19, -1.25e19] + [0.0] * 6, [1.0] * 8, [1.0] * 8, 1e-5, 1.0),  # torch's moments overflow
    ([1e10, -1e10], [1.0, 1.0], [-1 + 2 ** -10, 0.5], 0.0, 1e33),         # gamma / s tiny
    ([-6.0, -8.0, 8.0, 2.0], [1000 * TINY] * 4,                            # gamma subnormal
     [781 * TINY, 1093 * TINY, -1406 * TINY, -469 * TINY], 0.0, 2.0 ** -100)],
    ids=['variance-subnormal', 'input-subnormal', 'overflow', 'gamma-over-s-tiny',
         'gamma-subnormal'])
def test_layer_norm_head_signs_leave_magnitudes_out_of_range_to_torch(x, weight, bias, eps, step):
    """Rows where torch's float32 LayerNorm leaves the normal floats (squared deviations below
    2^-126, a mean rounded to a multiple of 2^-149, moments past float32's range) or the
    affine over the step does: its relative bounds do not hold there, so the rows go to torch
    (each case decided a bit the other way before the kernel checked the ranges)."""
    x = torch.tensor(x, dtype=torch.float32)[None, None, None]          # (1, 1, 1, K)
    weight = torch.tensor(weight, dtype=torch.float32)
    bias = None if bias is None else torch.tensor(bias, dtype=torch.float32)
    step, zero = torch.tensor([step], dtype=torch.float32), torch.zeros(1)
    expected = ops.pack_head_signs(F.layer_norm(x, (x.shape[-1], ), weight, bias, eps), step,
                                   zero)
    words, finished = ops.layer_norm_head_signs(x, weight, bias, eps, step, zero, 0.0)
    assert torch.equal(words, expected) and finished == 1


def test_torch_layer_norm_moments_stay_inside_the_kernels_bounds():
    """The fused LayerNorm bounds torch's own mean and 1 / std (layer_norm_head_signs in
    lowbit.cpp): |m' - m| <= (K + 16) u X and |r' - r| <= e_r r. On rows of several kinds they
    hold with room, so a torch whose LayerNorm rounded worse would fail here first."""
    u, g = 2.0 ** -24, torch.Generator().manual_seed(0)
    for k in (16, 17, 40, 64):
        rows = [torch.randn(500, k, generator=g),
                torch.randn(500, k, generator=g) + 3 * torch.randn(500, 1, generator=g),
                torch.randn(500, k, generator=g) ** 3,
                torch.rand(500, k, generator=g) * 10 + 5]
        for x in rows:
            _, mean, rstd = torch.ops.aten.native_layer_norm(x, [k], None, None, 1e-6)
            xd = x.double()
            m, v, big = xd.mean(1), xd.var(1, unbiased=False), xd.abs().amax(1)
            e_m = (k + 16) * u * big
            e_v = 6 * e_m * (2 * big + e_m) + (k + 24) * u * v
            denom = v + float(torch.tensor(1e-6))
            t = (e_v + u * denom) / denom
            e_r = 0.51 * t / (1 - t) + 4 * u
            assert ((mean.reshape(-1).double() - m).abs() <= 0.5 * e_m).all()
            kept = t <= 0.01
            rho = denom.rsqrt()
            assert ((rstd.reshape(-1).double() - rho).abs() <= 0.5 * e_r * rho)[kept].all()


@needs_avx512
def test_binary_attention_takes_q_and_k_signs_straight_from_their_layer_norm():
    """A LayerNorm as q's and k's transform (Bi-ViT's qk-norm) goes straight to the sign
    words: the same outputs as unfused, the same words when a wide margin sends every row to
    torch; unfused where the transform is hooked, is no LayerNorm, or a step is 0 (until it is
    restored in place), and for heads past 64 (which the kernel refuses, naming it)."""
    sdpa, (q, k, v) = _binary_sdpa(heads=3, dim=64, tokens=50)
    sdpa.q_transform, sdpa.k_transform = _layer_norm(64, 1), _layer_norm(64, 2, 'weight')
    fused, unfused = BinaryAttention(sdpa), BinaryAttention(sdpa, fuse_layer_norm=False)
    with torch.no_grad():
        assert torch.equal(fused(q, k, v), unfused(q, k, v))
        norm = fused._fusable_norm(q, fused.q_transform, 'q')
        assert norm is fused.q_transform
        assert unfused._fusable_norm(q, unfused.q_transform, 'q') is None
        expected = fused._operand(fused.q_transform(q), 'q')
        for extra, finished in ((0.0, None), (1e3, 2 * 3 * 50)):
            words, count = fused._norm_words(q, norm, 'q', extra)
            assert torch.equal(words, expected)
            # a wide margin sends every row to torch; the plain bound leaves it a few
            assert count == finished if finished else count < 2 * 3 * 50
        # the public count: the same as the kernel's, None where not fused
        counts = fused.layer_norm_rows_to_torch(q, k)
        assert counts['q'] == fused._norm_words(q, norm, 'q')[1]
        assert counts['k'] == fused._norm_words(k, fused.k_transform, 'k')[1]
        assert 0 <= counts['q'] < 2 * 3 * 50 and 0 <= counts['k'] < 2 * 3 * 50
        assert unfused.layer_norm_rows_to_torch(q, k) == {'q': None, 'k': None}
    handle = fused.q_transform.register_forward_hook(lambda *args: None)
    assert fused._fusable_norm(q, fused.q_transform, 'q') is None
    handle.remove()
    assert fused._fusable_norm(q, nn.Identity(), 'q') is None
    fused.q_scale[1] = 0.0                                   # in place: a new buffer version
    assert fused._fusable_norm(q, fused.q_transform, 'q') is None
    fused.q_scale[1] = unfused.q_scale[1]
    assert fused._fusable_norm(q, fused.q_transform, 'q') is norm
    long = torch.zeros(1, 1, 2, 65)
    assert fused._fusable_norm(long, nn.LayerNorm(65), 'q') is None

    class Wrapper(nn.Module):                               # says it applies its LayerNorm
        def __init__(self, norm):
            super().__init__()
            self.norm = norm

        def as_layer_norm(self):
            return self.norm

        def forward(self, x):
            return self.norm(x)

    class Custom(nn.LayerNorm):                             # a forward of its own
        pass
    wrapper = Wrapper(_layer_norm(64, 3))
    assert fused._fusable_norm(q, wrapper, 'q') is wrapper.norm
    wrapper.norm = _layer_norm(64, 4)                       # asked afresh, not remembered
    assert fused._fusable_norm(q, wrapper, 'q') is wrapper.norm
    assert fused._fusable_norm(q, Custom(64), 'q') is None
    with pytest.raises(RuntimeError, match='rows of 1 to 64 elements'):
        ops.layer_norm_head_signs(long, None, None, 1e-6, torch.ones(1), torch.zeros(1), 0.0)
    with pytest.raises(RuntimeError, match='head 0 has step 0'):
        ops.layer_norm_head_signs(q, None, None, 1e-6, torch.zeros(3), torch.zeros(3), 0.0)


@needs_avx512
def test_binary_attention_built_under_inference_mode_fuses_as_well():
    """Buffers made under ``torch.inference_mode()`` have no version counter: the fusions'
    checks are then made on every call instead of remembered, with the same outputs."""
    sdpa, (q, k, v) = _binary_sdpa(heads=3, dim=64, tokens=50)
    sdpa.q_transform, sdpa.k_transform = _layer_norm(64, 1), _layer_norm(64, 2)
    with torch.no_grad():
        expected = BinaryAttention(sdpa, fuse_softmax=False, fuse_layer_norm=False)(q, k, v)
    with torch.inference_mode():
        module = BinaryAttention(sdpa)
        assert module.q_scale.is_inference()
        assert module._fuses_softmax() and module._fusable_norm(q, module.q_transform, 'q')
        assert torch.equal(module(q, k, v), expected)


@pytest.mark.skipif(ops is None, reason='no C++ compiler')
def test_packing_along_the_rows_equals_packing_the_transposed_copy():
    """v^T's sign words straight from v (B, H, R, K) with strided heads: those of the
    transposed copy, for R past one word (130 rows: 64 + 64 + 2) and K not a multiple of 16,
    values at the threshold (x = -z s) included."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 130, 3, 37, generator=g).transpose(1, 2)     # (B, H, R, K) view
    scale, zero = torch.rand(3, generator=g) + 0.5, torch.rand(3, generator=g) - 0.5
    x[0, 1, :7, :5] = -zero[1] * scale[1]
    words = ops.pack_head_signs_transposed(x, scale, zero)
    assert words.shape == (6, 37, 3)
    assert torch.equal(words, ops.pack_head_signs(x.transpose(2, 3).contiguous(), scale, zero))


@pytest.mark.skipif(ops is None, reason='no C++ compiler')
def test_binary_attention_corrections_in_one_pass_round_as_the_torch_expression():
    """The compiled pass for ``(dots - zb sum_a - za sum_b + k za zb) * scale`` gives the torch
    reference's floats bit for bit, per head, with a mask and with P returned."""
    from mmext.quant.attention import QuantizedSDPA
    torch.manual_seed(0)
    sdpa = QuantizedSDPA.from_bits(4, 1).eval()
    # heads of a (B, N, H, d) projection, as in the models: rows strided, d contiguous
    q, k, v = (torch.randn(3, 29, 4, 40).transpose(1, 2) for _ in range(3))
    sdpa(q, k, v)
    for quantizer in (sdpa.q_quantizer, sdpa.k_quantizer, sdpa.v_quantizer, sdpa.prob_quantizer):
        quantizer.zero_point.data.uniform_(-0.3, 0.3)
        quantizer.scale.data.mul_(torch.rand(4) + 0.5)        # a different step per head
    mask = torch.rand(29, 29) > 0.2
    kernel, reference = BinaryAttention(sdpa, True), BinaryAttention(sdpa, False)
    out, probs = kernel(q, k, v, mask, need_weights=True)
    out_ref, probs_ref = reference(q, k, v, mask, need_weights=True)
    assert torch.equal(out, out_ref) and torch.equal(probs, probs_ref)
    # P v comes out heads last: merging the heads, (B, H, N, d) -> (B, N, H d), copies nothing
    merged = out.transpose(1, 2).reshape(3, 29, 160)
    assert merged.is_contiguous() and merged.data_ptr() == out.data_ptr()
    assert not out_ref.transpose(1, 2).is_contiguous()        # the reference's own layout


def kernel_outputs() -> dict[str, torch.Tensor]:
    """Every compiled kernel's outputs on fixed odd-sized inputs, through the runtime's layers
    (binary linear, pair, direct / patch / depthwise convolutions, binary attention with the
    softmax unfused, integer linear and convolutions), the LayerNorm signs (every row through
    torch's LayerNorm on the portable path) and the fused fake quantization (forward and
    backward): run once here and once in a process on the portable paths."""
    from mmext.quant.quantizers import fake_quantize
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    def signs(*shape):
        return torch.where(randn(*shape) >= 0, 1.0, -1.0)
    quantizer = LSQPlusQuantizer(bits=8)
    quantizer.eval()(randn(4, 70))
    ints = torch.randint(-8, 8, (33, 70), generator=g, dtype=torch.int8)
    conv_ints = torch.randint(-8, 8, (24, 20, 3, 3), generator=g, dtype=torch.int8)
    dw_ints = torch.randint(-8, 8, (20, 1, 3, 3), generator=g, dtype=torch.int8)
    x_conv = randn(2, 20, 9, 11).contiguous(memory_format=torch.channels_last)
    first = BinaryLinear(signs(130, 70), torch.rand(130, generator=g) + 0.5, randn(130))
    second = BinaryLinear(signs(17, 130), torch.rand(17, generator=g) + 0.5, randn(17),
                          threshold=randn(130) * 0.1)
    pair = BinaryLinearPair(first, nn.GELU(), second,
                            *sign_thresholds(first, nn.GELU(), second, lowbit_ops()))
    sdpa, (q, k, v) = _binary_sdpa(3, 70, 21)
    norm = _layer_norm(40, 3)
    x_fq = randn(5, 3, 37).requires_grad_()
    s_fq = (torch.rand(1, 3, 1, generator=g) + 0.1).requires_grad_()
    z_fq = randn(1, 3, 1).requires_grad_()
    fq = fake_quantize(x_fq, s_fq, z_fq, -8, 7, 1.0, fused=True)
    fq.backward(randn(5, 3, 37))
    with torch.no_grad():
        return {
            'binary linear': first(randn(9, 70)),
            'binary pair': pair(randn(9, 70)),
            'binary conv': BinaryConv2d(signs(70, 20, 3, 3), torch.rand(70, generator=g), None,
                                        2, 1, 1)(x_conv),
            'binary patches': BinaryConv2d(signs(16, 20, 3, 3), torch.rand(16, generator=g),
                                           None, 3, 0, 1)(x_conv),
            'binary depthwise': BinaryConv2d(signs(20, 1, 5, 5), torch.rand(20, generator=g),
                                             randn(20), 1, 2, 1, randn(20) * 0.1,
                                             groups=20)(x_conv),
            'binary attention': BinaryAttention(sdpa, fuse_softmax=False)(q, k, v),
            'int linear': IntLinear(ints, torch.rand(33, generator=g), randn(33),
                                    quantizer)(randn(9, 70)),
            'int conv': IntConv2d(conv_ints, torch.rand(24, generator=g), randn(24), quantizer,
                                  (1, 2), (1, 1), (1, 1))(x_conv),
            'int depthwise': IntConv2d(dw_ints, torch.rand(20, generator=g), randn(20),
                                       quantizer, (2, 2), (1, 1), (1, 1), groups=20)(x_conv),
            'depthwise float levels': ops.depthwise_conv2d(
                torch.randint(-128, 128, (2, 9, 11, 20), generator=g).float(),
                dw_ints.float().view(20, 9).t().contiguous(), 3, 3, 1, 1, 1, 1, 1, 1, False,
                None, 0.5, randn(99, 20), torch.rand(20, generator=g), randn(20)),
            'depthwise levels': ops.depthwise_conv2d(
                torch.randint(-128, 128, (2, 9, 11, 20), generator=g, dtype=torch.int8),
                dw_ints.float().view(20, 9).t().contiguous(), 3, 3, 2, 1, 1, 1, 1, 1, False,
                None, 0.5, randn(1, 20), torch.rand(20, generator=g) * 1e-2, randn(20),
                levels=[0.0, 6.0, 0.03, 2.0, -8, 7, 0]),
            'int epilogue levels': ops.int_epilogue_levels(
                torch.randint(-3000, 3000, (9, 70), generator=g, dtype=torch.int32), 0.7,
                randn(1, 70), torch.rand(70, generator=g) * 5e-3, randn(70), 0.0, 6.0, 0.02, 3.0,
                -128, 127, 0),
            'layer norm signs': ops.layer_norm_head_signs(
                randn(2, 21, 3, 3, 40).transpose(1, 3)[:, :, :, 0], *(
                    t.detach() for t in (norm.weight, norm.bias)), norm.eps,
                torch.rand(3, generator=g) + 0.5, randn(3) * 0.3, 0.0)[0],
            'fake quantize': fq.detach(), 'fake quantize grad x': x_fq.grad,
            'fake quantize grad s, z': torch.cat([s_fq.grad.flatten(), z_fq.grad.flatten()])}


@needs_kernels
@pytest.mark.skipif(not AVX512, reason='without AVX-512 the portable paths are the ones tested')
def test_the_portable_paths_give_the_avx512_paths_outputs(tmp_path):
    """A CPU without AVX-512 (or VPOPCNTDQ) runs the kernels' portable loops; here they run in a
    process with MMEXT_LOWBIT_PORTABLE=1 and must give the AVX-512 paths' outputs bit for bit
    (the fake quantization's step and zero-point gradients, summed in another order, within
    float rounding)."""
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / 'portable.pt'
    script = ('import sys, torch; sys.path.insert(0, sys.argv[1]); '
              'from tests.quant.test_runtime import kernel_outputs, ops; '
              'torch.save(dict(kernel_outputs(), avx512=ops.has_avx512_popcount()), sys.argv[2])')
    done = subprocess.run([sys.executable, '-c', script, str(repo), str(out)], cwd=repo,
                          env={**os.environ, 'MMEXT_LOWBIT_PORTABLE': '1'},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    portable, avx512 = torch.load(out), kernel_outputs()
    assert portable.pop('avx512') is False          # the process took the portable paths
    assert portable.keys() == avx512.keys()
    for name, expected in avx512.items():
        if name == 'fake quantize grad s, z':
            torch.testing.assert_close(portable[name], expected, rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(portable[name], expected), name
