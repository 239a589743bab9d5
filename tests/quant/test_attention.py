import pytest
import torch
from torch import nn

from mmext.quant.attention import QMultiheadAttention

from ..conftest import has_nonzero_grad


@pytest.mark.parametrize('batch_first', [False, True])
def test_full_precision_twin_matches_torch_attention_with_masks(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    q_mha = QMultiheadAttention.from_float(mha).eval()
    shape_q, shape_kv = ((2, 5, 16), (2, 7, 16)) if batch_first else ((5, 2, 16), (7, 2, 16))
    query, key = torch.randn(shape_q), torch.randn(shape_kv)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, -2:] = True
    attn_mask = torch.zeros(5, 7, dtype=torch.bool)
    attn_mask[0, 0] = True
    for kwargs in (dict(), dict(key_padding_mask=padding, attn_mask=attn_mask),
                   dict(average_attn_weights=False)):
        ref_out, ref_w = mha(query, key, key, **kwargs)
        out, w = q_mha(query, key, key, **kwargs)
        torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=1e-5)


def test_4_4_8_attention_quantizes_qkv_and_probabilities_per_head():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    q_mha = QMultiheadAttention.from_float(mha, w_bits=4, a_bits=4, attn_bits=8)
    assert q_mha.attention.q_quantizer.scale.shape == (4, ) and q_mha.attention.prob_quantizer.signed is False
    assert q_mha.q_proj.w_quantizer.bits == 4 and q_mha.q_proj.a_quantizer.bits == 4
    x = torch.randn(2, 6, 16, requires_grad=True)
    out, w = q_mha(x, x, x, average_attn_weights=False)
    assert out.shape == (2, 6, 16) and w.shape == (2, 4, 6, 6)
    for h in range(4):
        assert len(torch.unique(w[:, h].detach())) <= 256
    float_out, _ = mha(x, x, x)
    assert not torch.allclose(out, float_out)
    out.sum().backward()
    att = q_mha.attention
    for quantizer in (att.q_quantizer, att.k_quantizer, att.v_quantizer):
        assert torch.isfinite(quantizer.scale.grad).all() and has_nonzero_grad(quantizer.scale)
    assert has_nonzero_grad(x)


def test_float_attention_checkpoint_loads_into_the_quantized_twin():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    wrapper = nn.Sequential(mha)
    float_state = wrapper.state_dict()  # packed in_proj_weight / in_proj_bias
    torch.manual_seed(1)
    quantized = nn.Sequential(QMultiheadAttention(16, 4, batch_first=True)).eval()
    missing, unexpected = quantized.load_state_dict(float_state, strict=False)
    assert not missing and not unexpected
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(quantized[0](x, x, x)[0], mha(x, x, x)[0], atol=1e-5, rtol=1e-5)


def test_unsupported_attention_is_refused():
    with pytest.raises(ValueError, match='kdim == vdim == embed_dim'):
        QMultiheadAttention.from_float(nn.MultiheadAttention(16, 4, kdim=8, vdim=8))


def test_quantized_sdpa_at_full_precision_matches_torch():
    import torch.nn.functional as F

    from mmext.quant.attention import QuantizedSDPA
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, -1] = True
    sdpa = QuantizedSDPA.from_bits(num_heads=3, bits=32)
    torch.testing.assert_close(sdpa(q, k, v, attn_mask=~mask),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=~mask))


@pytest.mark.parametrize('cross_attn', [False, True])
def test_conditional_attention_twin_at_32_bits_matches_mmdet(cross_attn):
    from mmdet.models.layers.transformer.utils import ConditionalAttention

    from mmext.quant.detr_attention import QConditionalAttention
    torch.manual_seed(0)
    float_attn = ConditionalAttention(16, 4, cross_attn=cross_attn).eval()
    twin = QConditionalAttention.from_float(float_attn, attn_bits=32).eval()
    query, key = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, -3:] = True
    if cross_attn:
        kwargs = dict(query=query, key=key, query_pos=torch.randn(2, 5, 16),
                      ref_sine_embed=torch.randn(2, 5, 16), key_pos=torch.randn(2, 7, 16),
                      key_padding_mask=padding, is_first=True)
    else:
        kwargs = dict(query=key, key=key, query_pos=torch.randn(2, 7, 16),
                      key_padding_mask=padding)
    torch.testing.assert_close(twin(**kwargs), float_attn(**kwargs), atol=1e-5, rtol=1e-5)


def test_conditional_attention_at_4_bits_quantizes_both_matmuls():
    from mmdet.models.layers.transformer.utils import ConditionalAttention

    from mmext.quant.detr_attention import QConditionalAttention
    torch.manual_seed(0)
    twin = QConditionalAttention.from_float(ConditionalAttention(16, 4, cross_attn=True), 4)
    q, k, v = torch.randn(2, 5, 32), torch.randn(2, 7, 32), torch.randn(2, 7, 16)
    recorded = []
    twin.attention.logits.register_forward_hook(lambda m, a, out: recorded.append(out))
    out, weights = twin.forward_attn(q, k, v)
    assert out.shape == (2, 5, 16) and weights.shape == (2, 5, 7)
    assert recorded[0].shape == (2, 4, 5, 7)  # pre-softmax logits for distillation recorders
    for quantizer in (twin.attention.q_quantizer, twin.attention.prob_quantizer):
        assert quantizer.bits == 4 and quantizer.scale.shape == (4, )
    probs = []
    twin.attention.prob_quantizer.register_forward_hook(lambda m, a, out: probs.append(out))
    twin.forward_attn(q, k, v)
    for h in range(4):
        assert len(torch.unique(probs[0][:, h])) <= 16
    with pytest.raises(ValueError, match='do not fit'):
        twin.forward_attn(q, k[:, :, :16], v)


@pytest.mark.parametrize('shifted', [False, True])
@pytest.mark.parametrize('library', ['mmpretrain', 'mmseg'])
def test_window_attention_twin_at_32_bits_matches_the_library(library, shifted):
    import importlib

    from mmext.quant.swin_attention import QWindowMSA
    source = dict(mmpretrain='mmpretrain.models.utils.attention',
                  mmseg='mmseg.models.backbones.swin')[library]
    torch.manual_seed(0)
    float_attn = importlib.import_module(source).WindowMSA(
        embed_dims=16, window_size=(2, 2), num_heads=4).eval()
    torch.nn.init.normal_(float_attn.relative_position_bias_table)
    twin = QWindowMSA.from_float(float_attn, attn_bits=32).eval()
    x = torch.randn(6, 4, 16)  # 2 images x 3 windows of 2 x 2 tokens
    mask = None
    if shifted:
        mask = torch.zeros(3, 4, 4)
        mask[1, :2, 2:] = mask[1, 2:, :2] = -100.0
    torch.testing.assert_close(twin(x, mask), float_attn(x, mask), atol=1e-5, rtol=1e-5)


def test_binary_attention_evaluates_on_integer_dots_and_trains_on_the_float_product():
    """Fully binary attention evaluated without gradients takes its two products from integer
    dots and sign sums (`binary_product`, the low-bit runtime's rounding): a product that is
    exactly 0 comes out 0, where the float GEMM of the binarized tensors leaves +-1e-9. With
    gradients (training, or eval under autograd) it stays on the float product, whose values
    agree to float rounding, and the binarizers get their gradients."""
    from mmext.quant.attention import QuantizedSDPA
    torch.manual_seed(0)
    sdpa = QuantizedSDPA.from_bits(2, 1).eval()
    q, k, v = (torch.randn(3, 2, 10, 16) for _ in range(3))     # 10 keys: even sums of signs
    with torch.no_grad():
        sdpa(q, k, v)                                            # initialises the steps
        exact = sdpa(q, k, v)
    float_product = sdpa(q, k, v)                                # autograd on: float GEMM
    assert float_product.requires_grad and not exact.requires_grad
    zeros = exact == 0
    assert zeros.sum() > 50 and not (float_product[zeros] == 0).all()
    torch.testing.assert_close(exact, float_product.detach(), rtol=0, atol=1e-6)
    float_product.sum().backward()
    assert sdpa.prob_quantizer.scale.grad is not None and sdpa.v_quantizer.zero_point.grad is not None
    sdpa.train()
    with torch.no_grad():
        torch.testing.assert_close(sdpa(q, k, v), float_product.detach(), rtol=0, atol=0)
