"""Bi-ViT's binarized blocks, ranking loss and distiller on a tiny mmpretrain ViT."""
import pytest
import torch
from mmengine.registry import DefaultScope

import projects.bivit as bivit
from mmext.quant import QLinear, SignBinarizer, WeightBinarizer
from mmext.quant.quantizers import LearnableScaleBinarizer
from mmext.registry import QUANTIZERS


def tiny_vit_cfg(layers: int = 2) -> dict:
    return dict(
        type='ImageClassifier',
        backbone=dict(type='VisionTransformer',
                      arch=dict(embed_dims=32, num_layers=layers, num_heads=2,
                                feedforward_channels=64),
                      img_size=16, patch_size=4, in_channels=1),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=5, in_channels=32),
        data_preprocessor=dict(num_classes=5, mean=[0.0], std=[1.0], to_rgb=False))


def _build(cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        return MODELS.build(cfg)


def _binarize(model, **kwargs):
    return QUANTIZERS.build(dict(type='mmext.BiViTSwap', **kwargs))(model)


def test_binarized_blocks_shapes_levels_and_kept_biases():
    torch.manual_seed(0)
    model = _binarize(_build(tiny_vit_cfg()))
    attn = model.backbone.layers[0].attn
    assert isinstance(attn.qkv, QLinear) and attn.qkv.bias is not None  # bias kept
    assert isinstance(attn.qkv.w_quantizer, WeightBinarizer)
    assert isinstance(attn.qkv.a_quantizer, SignBinarizer)
    core = attn.scaled_dot_product_attention
    assert isinstance(core.q_transform, bivit.HeadLayerNorm)
    assert isinstance(core.q_quantizer, LearnableScaleBinarizer)
    assert not isinstance(model.backbone.patch_embed.projection, type(attn.qkv))  # real-valued
    x = torch.randn(3, 1, 16, 16, requires_grad=True)
    seen = {}
    core.v_quantizer.register_forward_hook(lambda m, a, out: seen.update(v=out))
    logits = model(x, mode='tensor')
    assert logits.shape == (3, 5)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # binarized v: two levels s (1 - z) and s (-1 - z) per head
    s, z = core.v_quantizer.scale.detach(), core.v_quantizer.zero_point.detach()
    for head in range(2):
        levels = torch.unique(seen['v'][:, head].detach())
        expected = torch.stack([s[head] * (-1 - z[head]), s[head] * (1 - z[head])])
        torch.testing.assert_close(levels, expected)
    # binarized weights are +-a per output row
    w = attn.qkv.w_quantizer(attn.qkv.weight)
    assert torch.equal(w.abs(), w.abs()[:, :1].expand_as(w))


def test_learnable_scale_passes_gradient_where_plain_sign_does_not():
    torch.manual_seed(0)
    # softmax probabilities of 50 keys: all far below 1, so sign(P) = +1 everywhere and its
    # clipped estimator is constant; the scaled binarizer's threshold sits at uniform attention
    probs = torch.randn(2, 3, 4, 50).softmax(-1).requires_grad_()
    binarizer = LearnableScaleBinarizer(num_channels=3, zero_point_init='uniform_attention')
    out = binarizer(probs)
    assert len(torch.unique(out[:, 0])) == 2  # both levels used: P above and below 1/N
    (out * torch.randn_like(out)).sum().backward()
    assert binarizer.scale.grad.abs().min() > 0 and binarizer.zero_point.grad.abs().min() > 0
    plain = SignBinarizer(ste='clip')(probs)
    assert len(torch.unique(plain)) == 1  # sign(P) carries no information


def test_baseline_freezes_scales_and_qk_norm_is_optional():
    model = _binarize(_build(tiny_vit_cfg()), learnable_scale=False, qk_norm=False)
    core = model.backbone.layers[1].attn.scaled_dot_product_attention
    assert isinstance(core.q_transform, torch.nn.Identity)
    assert not core.q_quantizer.scale.requires_grad and not core.prob_quantizer.zero_point.requires_grad
    model(torch.randn(2, 1, 16, 16), mode='tensor')
    assert (core.q_quantizer.scale != 1).all()  # still initialised from data


def test_ranking_loss_zero_for_the_same_order_positive_for_a_swapped_pair():
    loss = bivit.RankingAwareAttentionLoss(top_k=2, num_samples=3)
    teacher = torch.tensor([[[[4.0, 3.0, 2.0, 1.0, 0.0]]]])  # (B, H, L, N)
    assert loss(teacher.clone(), teacher) == 0
    assert loss(2 * teacher, teacher) == 0  # the same ranking with wider gaps
    swapped = teacher.clone()
    swapped[..., [0, 4]] = swapped[..., [4, 0]]
    student = swapped.requires_grad_()
    value = loss(student, teacher)
    assert value > 0
    value.backward()
    assert student.grad[..., 0] < 0 or student.grad[..., 4] > 0  # pushes the pair apart
    logistic = bivit.RankingAwareAttentionLoss(top_k=2, num_samples=3, penalty='logistic')
    assert logistic(swapped, teacher) > logistic(teacher, teacher) > 0
    with pytest.raises(ValueError, match='same architecture'):
        loss(teacher[..., :4], teacher)
    with pytest.raises(ValueError, match="'margin', 'logistic'"):
        bivit.RankingAwareAttentionLoss(penalty='kl')


def test_sampled_pairs_rank_teacher_top_keys_against_the_rest():
    teacher = torch.randn(2, 2, 3, 20)
    top, rest = bivit.sample_ranked_pairs(teacher, top_k=4, num_samples=6)
    assert top.shape == (2, 2, 3, 4) and rest.shape == (2, 2, 3, 6)
    assert not (top[..., :, None] == rest[..., None, :]).any()
    assert (teacher.gather(-1, top).min(-1).values >= teacher.gather(-1, rest).max(-1).values).all()


def test_kendall_tau():
    t = torch.arange(6.0)
    assert bivit.kendall_tau(t, t) == 1 and bivit.kendall_tau(-t, t) == -1
    one_swap = torch.tensor([1.0, 0.0, 2.0, 3.0, 4.0, 5.0])
    torch.testing.assert_close(bivit.kendall_tau(one_swap, t), torch.tensor(1 - 2 / 15))


def test_bivit_soft_kd_distills_ranking_and_logits_and_saves_the_students_keys(tmp_path):
    torch.manual_seed(0)
    teacher_cfg = tiny_vit_cfg()
    checkpoint = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=_build(teacher_cfg).state_dict()), checkpoint)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmext.registry import MODELS
        model = MODELS.build(dict(
            type='mmext.BiViT', classifier=tiny_vit_cfg(), quant=dict(type='mmext.BiViTSwap'),
            teacher=dict(config=dict(model=teacher_cfg), checkpoint=str(checkpoint)),
            distill=dict(rank=dict(type='mmext.RankingAwareAttentionLoss'),
                         logit=dict(type='mmext.LogitDistillationLoss', loss_weight=0.5))))
        from mmpretrain.structures import DataSample
        samples = [DataSample().set_gt_label(i % 5) for i in range(4)]
        data = model.data_preprocessor(dict(inputs=list(torch.rand(4, 1, 16, 16) * 255),
                                            data_samples=samples), True)
        losses = model(**data, mode='loss')
    assert set(losses) == {'loss', 'loss_logit', 'loss_rank'}
    assert losses['loss_rank'] > 0 and losses['loss_logit'] > 0
    sum(losses.values()).backward()
    core = model.student.backbone.layers[0].attn.scaled_dot_product_attention
    assert core.q_quantizer.scale.grad.abs().sum() > 0
    assert core.q_transform.norm.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    keys = list(model.state_dict())
    assert 'backbone.layers.0.attn.scaled_dot_product_attention.q_transform.norm.weight' in keys
    assert not any(k.startswith(('student.', 'teacher')) for k in keys)


def test_diagnostics_gradients_reach_attention_inputs_and_tau_of_a_model_with_itself():
    from mmpretrain.structures import DataSample

    from mmext.quant import twin_attention
    torch.manual_seed(0)
    float_model = _build(tiny_vit_cfg())
    binary = _binarize(_build(tiny_vit_cfg()))
    binary.load_state_dict(float_model.state_dict(), strict=False)
    inputs = torch.randn(4, 1, 16, 16)
    samples = [DataSample().set_gt_label(i) for i in range(4)]
    norms = bivit.attention_input_gradients(binary, inputs, samples)
    assert set(norms) == {'q', 'k', 'v', 'p'} and all(v > 0 for v in norms.values())
    assert all(p.grad is None for p in binary.parameters())  # left as they were
    twin_attention(float_model)
    assert bivit.attention_ranking_agreement(float_model, float_model, inputs) == 1.0
    tau = bivit.attention_ranking_agreement(binary, float_model, inputs)
    assert -1 < tau < 1
