import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from mmext.quant import ModuleSwap, count_macs, summarize_ops


def test_macs_of_conv_and_linear_by_hand_and_their_cost_per_convention():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    float_records = count_macs(model, torch.randn(1, 3, 8, 8))
    assert [r.macs for r in float_records] == [64 * 8 * 27, 64 * 8 * 72, 32]
    total = sum(r.macs for r in float_records)
    assert summarize_ops(float_records)['ops'] == total  # float: 1 FLOP per MAC

    ModuleSwap(w_bits=4, a_bits=4, skip=['0', '4'])(model)
    records = count_macs(model, torch.randn(1, 3, 8, 8))
    assert [(r.w_bits, r.a_bits) for r in records] == [(32, 32), (4, 4), (32, 32)]
    low = 64 * 8 * 72
    bireal = summarize_ops(records, 'bireal64')
    assert bireal['flops'] == total - low and bireal['bops'] == low * 16
    assert bireal['ops'] == pytest.approx(total - low + low * 16 / 64)
    assert summarize_ops(records, 'linear32')['ops'] == pytest.approx(total - low + low * 4 / 32)

    ModuleSwap(w_bits=1, a_bits=1, skip=[])(model)  # the float ones left: W1A1 costs 1/64
    records = count_macs(model, torch.randn(1, 3, 8, 8))
    assert summarize_ops(records)['ops'] == pytest.approx(total / 64 + low * (16 - 1) / 64)


def test_torch_attention_counts_the_same_macs_before_and_after_the_swap():
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True).eval()
    x = torch.randn(2, 5, 16)
    before = count_macs(layer, x)
    ModuleSwap(w_bits=4, a_bits=4, attn_bits=8)(layer)
    after = count_macs(layer, x)
    assert sum(r.macs for r in before) == sum(r.macs for r in after)
    matmuls = [r for r in after if r.op == 'matmul']
    assert [r.macs for r in matmuls] == [2 * 4 * 5 * 5 * 4] * 2
    assert all((r.w_bits, r.a_bits) == (8, 8) for r in matmuls)


def test_mmpretrain_vit_counts_the_same_macs_before_and_after_the_swap():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        vit = MODELS.build(dict(type='VisionTransformer', arch='deit-tiny', img_size=32,
                                patch_size=8))
    vit.eval()  # (mmpretrain's train() returns None, so no chaining)
    x = torch.randn(1, 3, 32, 32)
    before = count_macs(vit, x)
    ModuleSwap(w_bits=1, a_bits=1, attn_bits=1, skip=['patch_embed.projection'])(vit)
    after = count_macs(vit, x)
    assert sum(r.macs for r in before) == sum(r.macs for r in after)
    tokens, dims = 17, 192  # 16 patches + the class token
    matmuls = [r for r in before if r.op == 'matmul']
    assert len(matmuls) == 24 and matmuls[0].macs == tokens * tokens * dims
    assert sum(r.low_bit for r in after) == len(after) - 1  # all but the patch embedding


def test_unknown_convention_is_refused():
    records = count_macs(nn.Linear(2, 2), torch.randn(1, 2))
    with pytest.raises(ValueError, match="unknown convention 'fvcore'"):
        summarize_ops(records, 'fvcore')


def test_conditional_detr_counts_the_same_macs_before_and_after_the_swap():
    from mmdet.structures import DetDataSample

    from .test_swap import _tiny_conditional_detr
    detr = _tiny_conditional_detr().eval()
    x = torch.randn(1, 3, 64, 96)
    samples = [DetDataSample(metainfo=dict(img_shape=(64, 96), batch_input_shape=(64, 96)))]
    before = count_macs(detr, x, samples, mode='tensor')
    ModuleSwap(w_bits=4, a_bits=4, attn_bits=8)(detr)
    after = count_macs(detr, x, samples, mode='tensor')
    assert sum(r.macs for r in before) == sum(r.macs for r in after)
    cross = [r for r in after if r.name.startswith('decoder.layers.0.cross_attn.attention')]
    source, queries, dims = 2 * 3, 5, 256  # stride-32 feature map of a 64 x 96 image
    assert [r.macs for r in cross] == [queries * source * 2 * dims, queries * source * dims]
    assert all((r.w_bits, r.a_bits) == (8, 8) for r in after if r.op == 'matmul')
    assert not any(hasattr(m, 'forward_attn') and 'forward_attn' in vars(m)
                   for m in detr.modules())  # the counting wrapper is gone


def test_parameter_bits_count_quantized_weights_at_their_width():
    from mmext.quant import parameter_bits
    model = nn.Sequential(nn.Linear(8, 4), nn.LayerNorm(4))
    assert parameter_bits(model) == (36 + 8, 44 * 32)
    ModuleSwap(w_bits=3, a_bits=4)(model)
    # weight 32 x 3 bits; bias 4, norm 8, weight steps 4, input step + zero point 2 at 32 bits
    assert parameter_bits(model) == (36 + 8 + 4 + 2, 32 * 3 + (4 + 8 + 4 + 2) * 32)
