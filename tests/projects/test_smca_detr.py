"""SMCA-DETR (projects/qdetr/smca_detr.py) and Q-DETR on it, with tiny SMCA-DETRs built from
the production config."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint, save_checkpoint

import projects.qdetr as qdetr
from mmext.quant import ModuleSwap, QLinear
from mmext.quant.attention import QMultiheadAttention
from projects.qdetr.qdetr import last_decoder_layer_boxes
from projects.qdetr.smca_detr import (
    SMCADetrTransformerDecoderLayer,
    gaussian_log_prior,
    valid_feature_sizes,
)

from ..conftest import REPO, has_nonzero_grad

CONFIG = REPO / 'configs/qdetr/smca-detr_r50_8xb2-50e_coco.py'
QUANT = dict(type='mmext.ModuleSwap', w_bits=4, a_bits=4, attn_bits=8,
             skip=['backbone.conv1', 'bbox_head.*'])


def tiny_smca_detr_cfg() -> dict:
    """The float SMCA-DETR config, shrunk: ResNet-18, 1+2 layers, 5 queries, FFN 128."""
    cfg = Config.fromfile(CONFIG).model
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.neck.in_channels = [512]
    cfg.num_queries = 5
    for part, layers in (('encoder', 1), ('decoder', 2)):
        cfg[part].num_layers = layers
        cfg[part].layer_cfg.ffn_cfg.feedforward_channels = 128
    return cfg.to_dict()


def _build(cfg=None, seed=0):
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        torch.manual_seed(seed)
        model = MODELS.build(cfg or tiny_smca_detr_cfg())
        model.init_weights()
    return model


def _packed():
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(2, [[3, 64, 64], [3, 64, 80]], num_items=[2, 0], num_classes=80)


def _batch(model, training=True):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return model.data_preprocessor(_packed(), training)


def _total(losses):
    return sum(v for k, v in losses.items() if 'loss' in k)


def test_gaussian_log_prior_is_the_papers_formula_on_feature_cells():
    centres = torch.tensor([[[0.5, 0.25]]])  # (B=1, Nq=1, 2)
    log_scales = torch.log(torch.tensor([[[[1.0, 2.0], [3.0, 0.5]]]]))  # 2 heads, (s_w, s_h)
    valid = torch.tensor([[4.0, 2.0]])  # the valid region is 4 cells wide, 2 high
    prior = gaussian_log_prior(centres, log_scales, (3, 5), valid, beta=8.0)
    assert prior.shape == (1, 2, 1, 15)
    c_w, c_h = 0.5 * 4, 0.25 * 2  # (2.0, 0.5) in cells
    for head, (s_w, s_h) in enumerate(((1.0, 2.0), (3.0, 0.5))):
        for row in range(3):
            for col in range(5):
                expected = -((col + 0.5 - c_w) ** 2 / (8 * s_w ** 2) +
                             (row + 0.5 - c_h) ** 2 / (8 * s_h ** 2))
                assert prior[0, head, 0, row * 5 + col].item() == pytest.approx(expected,
                                                                                abs=1e-5)
    with pytest.raises(ValueError, match=r'\(B, Nq, heads, 2\)'):
        gaussian_log_prior(centres, log_scales[..., :1], (3, 5), valid, 8.0)


def test_valid_feature_sizes_read_the_padding_mask():
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[0, :2, :3] = False  # valid 3 wide, 2 high
    mask[1] = False
    sizes = valid_feature_sizes(mask.view(2, -1), (3, 4), 2, torch.zeros(1))
    assert sizes.tolist() == [[3.0, 2.0], [4.0, 3.0]]
    assert valid_feature_sizes(None, (3, 4), 2, torch.zeros(1)).tolist() == [[4, 3]] * 2
    with pytest.raises(ValueError, match='does not fit'):
        valid_feature_sizes(mask.view(2, -1), (4, 4), 2, torch.zeros(1))


def _layer(**kwargs):
    torch.manual_seed(0)
    attn = dict(embed_dims=32, num_heads=4, dropout=0.0, batch_first=True)
    layer = SMCADetrTransformerDecoderLayer(
        self_attn_cfg=dict(attn), cross_attn_cfg=dict(attn),
        ffn_cfg=dict(embed_dims=32, feedforward_channels=64), **kwargs)
    torch.nn.init.normal_(layer.scale_proj.weight, std=0.2)  # heads of different scales
    return layer.eval()


def _attention_on_blank_memory(layer, probs_of):
    """Cross-attention probabilities (B, heads, Nq, h*w) of the layer on a memory whose keys
    are all equal (content and position zero): without a spatial prior they are uniform. Also
    returns softmax(log G) for the layer's own centres and scales."""
    b, nq, (h, w) = 2, 3, (4, 5)
    query = torch.randn(b, nq, 32)
    memory = torch.zeros(b, h * w, 32)
    reference = torch.tensor([[0.1, 0.1], [0.5, 0.55], [0.9, 0.6]]).expand(b, nq, 2)
    valid = torch.tensor([[5.0, 4.0], [3.0, 2.0]])  # the second image is padded
    padding = torch.ones(b, h, w, dtype=torch.bool)
    padding[0] = False
    padding[1, :2, :3] = False
    padding = padding.view(b, -1)
    query_pos = torch.randn(b, nq, 32)
    seen, inputs = [], []
    handles = [probs_of(layer).register_forward_hook(lambda m, a, out: seen.append(out[1])),
               layer.norms[0].register_forward_hook(lambda m, a, out: inputs.append(out))]
    with torch.no_grad():
        layer(query, key=memory, value=memory, query_pos=query_pos, key_pos=memory,
              reference=reference, spatial_shape=(h, w), valid_sizes=valid,
              key_padding_mask=padding)
        expected = layer.cross_attn_prior(inputs[0] + query_pos, reference, (h, w), valid,
                                          padding)
    for handle in handles:
        handle.remove()
    expected = expected.view(b, layer.num_heads, nq, h * w).softmax(-1)
    return seen[0], expected, padding


def test_the_gaussian_prior_shapes_the_cross_attention():
    """Fails when the prior is not added to the logits: on a blank memory the attention would
    then be uniform over the valid cells."""
    layer = _layer()
    averaged, expected, padding = _attention_on_blank_memory(
        layer, lambda layer: layer.cross_attn.attn)  # nn.MultiheadAttention: head average
    torch.testing.assert_close(averaged, expected.mean(1), atol=1e-5, rtol=0)
    assert (averaged[1][:, padding[1]] == 0).all()  # padding still masked out
    uniform = 1 / (~padding).sum(-1, keepdim=True)
    assert (averaged.amax(-1) > 1.3 * uniform).all()  # far from uniform
    # each query attends most to the cell holding its centre: (0, 0), (2, 2), (4, 2) of image 0
    assert averaged[0].argmax(-1).tolist() == [0, 2 * 5 + 2, 2 * 5 + 4]


def test_the_quantized_cross_attention_still_adds_the_prior():
    layer = _layer()
    ModuleSwap(w_bits=4, a_bits=4, attn_bits=8)(layer)
    assert isinstance(layer.cross_attn.attn, QMultiheadAttention)
    assert isinstance(layer.scale_proj, QLinear)
    per_head, expected, padding = _attention_on_blank_memory(
        layer, lambda layer: layer.cross_attn.attn.attention)  # QuantizedSDPA: P per head
    # P is quantized at 8 bits (its LSQ+ step starts at 2 mean|P| / sqrt(255))
    torch.testing.assert_close(per_head, expected, atol=0.02, rtol=0)
    assert per_head[0].mean(0).argmax(-1).tolist() == [0, 2 * 5 + 2, 2 * 5 + 4]


def test_smca_detr_builds_from_the_config_trains_and_predicts():
    model = _build()
    assert isinstance(model, qdetr.SMCADETR)
    layers = model.decoder.layers
    assert layers[0].scale_proj.out_features == 2 * 8  # (s_w, s_h) per head
    assert layers[0].beta == 8.0
    losses = model(**_batch(model), mode='loss')
    assert {'loss_cls', 'loss_bbox', 'loss_iou', 'd0.loss_cls'} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    _total(losses).backward()
    for param in model.decoder.ref_point_head.parameters():  # the centre predictor
        assert has_nonzero_grad(param)
    for layer in layers:  # the scale predictors
        assert has_nonzero_grad(layer.scale_proj.weight)
        assert has_nonzero_grad(layer.scale_proj.bias)
    model.eval()
    with DefaultScope.overwrite_default_scope('mmdet'), torch.no_grad():
        predictions = model(**_batch(model, False), mode='predict')
        scores, boxes = model(**_batch(model, False), mode='tensor')
    assert len(predictions) == 2 and len(predictions[0].pred_instances) == 100  # max_per_img
    assert scores.shape == (2, 2, 5, 80) and boxes.shape == (2, 2, 5, 4)
    assert last_decoder_layer_boxes((scores, boxes)).shape == (2, 5, 4)  # what Q-DETR reads


def test_boxes_are_predicted_relative_to_the_query_centres():
    model = _build().eval()
    with torch.no_grad():
        model.bbox_head.fc_reg.weight.zero_()
        model.bbox_head.fc_reg.bias.zero_()
        data = _batch(model, False)
        centres = model.decoder.ref_point_head(model.query_embedding.weight).sigmoid()
        _, boxes = model(**data, mode='tensor')
    torch.testing.assert_close(boxes[..., :2], centres.expand_as(boxes[..., :2]))
    torch.testing.assert_close(boxes[..., 2:], torch.full_like(boxes[..., 2:], 0.5))


def test_decoder_outputs_change_without_the_prior():
    model = _build().eval()
    data = _batch(model, False)
    hidden = []
    model.decoder.register_forward_hook(lambda m, a, out: hidden.append(out[0]))
    with torch.no_grad():
        model(**data, mode='tensor')
        for layer in model.decoder.layers:
            layer.beta = 1e12  # log G ~ 0: only the padding mask is left
        model(**data, mode='tensor')
    assert (hidden[0] - hidden[1]).abs().max() > 1e-2  # LayerNorm'd: unit scale


def test_the_4bit_swap_quantizes_smca_linear_layers_and_attention():
    swap = ModuleSwap(w_bits=4, a_bits=4, attn_bits=8, skip=['backbone.conv1', 'bbox_head.*'])
    model = swap(_build())
    rows = {r['name']: r for r in swap.report}
    for name in ('decoder.layers.0.cross_attn.attn', 'decoder.layers.1.self_attn.attn',
                 'encoder.layers.0.self_attn.attn'):
        assert rows[name]['action'] == 'quantized' and rows[name]['attn_bits'] == 8
        assert isinstance(model.get_submodule(name), QMultiheadAttention)
    for name in ('decoder.layers.0.scale_proj', 'decoder.layers.1.scale_proj',
                 'decoder.ref_point_head.layers.0', 'decoder.ref_point_head.layers.1'):
        assert rows[name]['action'] == 'quantized' and rows[name]['w_bits'] == 4
        assert isinstance(model.get_submodule(name), QLinear)
    losses = model(**_batch(model), mode='loss')
    _total(losses).backward()
    cross = model.decoder.layers[1].cross_attn.attn
    assert has_nonzero_grad(cross.attention.prob_quantizer.scale)
    assert has_nonzero_grad(model.decoder.layers[1].scale_proj.weight)
    assert has_nonzero_grad(model.decoder.layers[1].scale_proj.w_quantizer.scale)


@pytest.fixture
def smca_teacher(tmp_path):
    cfg = tiny_smca_detr_cfg()
    model = _build(cfg, seed=1)
    path = tmp_path / 'smca_teacher.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    return dict(config=dict(model=cfg, default_scope='mmdet'), checkpoint=str(path)), model


def _build_qdetr(**kwargs):
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmext.registry import MODELS
        torch.manual_seed(0)
        return MODELS.build(dict(type='mmext.QDETR', detector=tiny_smca_detr_cfg(),
                                 quant=QUANT, **kwargs))


def test_qdetr_student_distills_from_an_smca_teacher(smca_teacher):
    teacher_cfg, float_teacher = smca_teacher
    model = _build_qdetr(distribution_alignment=dict(pattern='decoder.layers.*'),
                         teacher=teacher_cfg, distill=dict(matcher=dict(tau=None)))
    student = model.student
    cross = student.decoder.layers[0].cross_attn.attn
    assert isinstance(cross, QMultiheadAttention)
    assert isinstance(cross.attention.q_transform, qdetr.QueryDistributionAlignment)
    with DefaultScope.overwrite_default_scope('mmdet'):
        losses = model(**_batch(model), mode='loss')
    assert {'loss_cls', 'loss_bbox', 'loss_iou', 'loss_drd'} <= set(losses)
    assert losses['loss_drd'].item() > 0  # the 4-bit student differs from the teacher
    _total(losses).backward()
    assert has_nonzero_grad(cross.attention.q_transform.gamma)
    assert has_nonzero_grad(student.decoder.layers[0].scale_proj.weight)
    teacher = model.teacher
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    torch.testing.assert_close(teacher.decoder.layers[1].scale_proj.weight,
                               float_teacher.decoder.layers[1].scale_proj.weight)
    # the teacher's recorded attention is a 32-bit twin that keeps the prior
    assert isinstance(teacher.decoder.layers[0].cross_attn.attn, QMultiheadAttention)
    with DefaultScope.overwrite_default_scope('mmdet'):
        predictions = model(**_batch(model, False), mode='predict')
    assert len(predictions) == 2


def test_checkpoint_round_trips(tmp_path, smca_teacher):
    # the float detector
    model = _build().eval()
    save_checkpoint(model.state_dict(), str(tmp_path / 'smca.pth'))
    loaded = _build(seed=5).eval()
    load_checkpoint(loaded, str(tmp_path / 'smca.pth'), strict=True, logger='silent')
    data = _batch(model, False)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**data, mode='tensor'), model(**data, mode='tensor'))
    # a float SMCA checkpoint into the 4-bit student: only quantizer state is missing
    student = _build_qdetr()
    missing, unexpected = student.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all('quantizer' in k for k in missing)
    # the trained 4-bit Q-DETR student (quantizers initialised, DA) round trips
    teacher_cfg, _ = smca_teacher
    trained = _build_qdetr(distribution_alignment=dict(pattern='decoder.layers.*'),
                           teacher=teacher_cfg)
    with DefaultScope.overwrite_default_scope('mmdet'):
        trained(**_batch(trained), mode='loss')
    trained.eval()
    save_checkpoint(trained.state_dict(), str(tmp_path / 'qsmca.pth'))
    fresh = _build_qdetr(distribution_alignment=dict(pattern='decoder.layers.*'),
                         teacher=teacher_cfg).eval()
    load_checkpoint(fresh, str(tmp_path / 'qsmca.pth'), strict=True, logger='silent')
    with torch.no_grad():
        torch.testing.assert_close(fresh(**data, mode='tensor'), trained(**data, mode='tensor'))


def test_bad_smca_settings_are_named():
    with pytest.raises(ValueError, match="'per_head', 'shared', 'fixed'"):
        _layer(scales='diagonal')
    with pytest.raises(ValueError, match='beta and scale_init must be positive'):
        _layer(beta=0.0)
    cfg = tiny_smca_detr_cfg()
    cfg['bbox_head'].update(type='DETRHead')
    with pytest.raises(ValueError, match='must take references'):
        _build(cfg)
    model = _build()
    memory = torch.zeros(1, 6, 256)
    with pytest.raises(ValueError, match='needs spatial_shape'):
        model.decoder(query=torch.zeros(1, 5, 256), key=memory, value=memory,
                      query_pos=torch.zeros(1, 5, 256), key_pos=memory, key_padding_mask=None)


@pytest.mark.parametrize('scales, outputs', [('shared', 2), ('fixed', None)])
def test_shared_and_fixed_scales(scales, outputs):
    layer = _layer(scales='per_head')  # for the shapes of its arguments
    attn = dict(embed_dims=32, num_heads=4, dropout=0.0, batch_first=True)
    other = SMCADetrTransformerDecoderLayer(
        self_attn_cfg=dict(attn), cross_attn_cfg=dict(attn),
        ffn_cfg=dict(embed_dims=32, feedforward_channels=64), scales=scales, scale_init=2.0)
    assert (other.scale_proj.out_features if other.scale_proj else None) == outputs
    log_scales = other.log_scales(torch.randn(2, 3, 32))
    assert log_scales.shape == layer.log_scales(torch.randn(2, 3, 32)).shape == (2, 3, 4, 2)
    assert torch.equal(log_scales[:, :, :1].expand_as(log_scales), log_scales)  # heads alike
    if scales == 'fixed':
        assert torch.allclose(log_scales, torch.full_like(log_scales, math.log(2.0)))
