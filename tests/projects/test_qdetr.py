import pytest
import torch
from mmengine.registry import DefaultScope

import projects.qdetr as qdetr
from mmext.quant import QLinear

from ..conftest import has_nonzero_grad
from ..quant.test_swap import tiny_conditional_detr_cfg


def test_distribution_alignment_standardises_each_query_token():
    torch.manual_seed(0)
    da = qdetr.QueryDistributionAlignment(head_dim=8)
    q = torch.randn(2, 4, 5, 8) * 3 + 7
    out = da(q)
    torch.testing.assert_close(out.mean(dim=-1), torch.zeros(2, 4, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=-1, unbiased=False), torch.ones(2, 4, 5), atol=1e-3,
                               rtol=0)
    with torch.no_grad():
        da.gamma.fill_(2.0)
        da.beta.fill_(0.5)
    out = da(q)
    torch.testing.assert_close(out.mean(dim=-1), torch.full((2, 4, 5), 0.5), atol=1e-5, rtol=0)
    out.square().sum().backward()
    assert has_nonzero_grad(da.gamma) and has_nonzero_grad(da.beta)
    with pytest.raises(ValueError, match='head dim 8'):
        da(torch.randn(1, 1, 1, 6))


def test_distribution_alignment_fit_init_reproduces_the_queries_and_is_kept_on_load():
    torch.manual_seed(0)
    # per-channel offsets and scales, tokens of similar norm: the fitted affine map of the
    # standardised q gets close to q itself, the paper's (1, 0) does not
    q = torch.randn(4, 2, 25, 16) * torch.linspace(0.5, 2, 16) + torch.linspace(-3, 3, 16)
    fitted = qdetr.QueryDistributionAlignment(head_dim=16, init='fit')
    assert not fitted.initialized
    error = (fitted(q) - q).square().mean() / q.var()
    paper_error = (qdetr.QueryDistributionAlignment(16)(q) - q).square().mean() / q.var()
    assert fitted.initialized and error < 0.1 < paper_error
    # the fit is the least-squares one: any perturbation of gamma or beta fits worse
    z = fitted.standardise(q)
    with torch.no_grad():
        for name in ('gamma', 'beta'):
            moved = (fitted.gamma + 0.05 * (name == 'gamma')) * z + fitted.beta + 0.05 * (
                name == 'beta')
            assert (moved - q).square().mean() > (fitted(q) - q).square().mean()
    # a loaded, fitted module is not refitted on new data
    loaded = qdetr.QueryDistributionAlignment(head_dim=16, init='fit')
    loaded.load_state_dict(fitted.state_dict())
    loaded(torch.randn(1, 2, 3, 16))
    torch.testing.assert_close(loaded.gamma, fitted.gamma)
    # a trained checkpoint from before the flag existed is not refitted either
    old_style = {k: v for k, v in fitted.state_dict().items() if k != 'initialized'}
    legacy = qdetr.QueryDistributionAlignment(head_dim=16, init='fit')
    legacy.load_state_dict(old_style)
    legacy(torch.randn(1, 2, 3, 16))
    torch.testing.assert_close(legacy.beta, fitted.beta)
    with pytest.raises(ValueError, match="'paper', 'fit'"):
        qdetr.QueryDistributionAlignment(16, init='ones')


def test_foreground_query_matching_on_hand_made_boxes():
    gt = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    student = torch.tensor([[0.5, 0.5, 0.2, 0.2],     # on the object
                            [0.52, 0.5, 0.2, 0.2],    # close
                            [0.1, 0.1, 0.05, 0.05]])  # background
    teacher = torch.tensor([[0.1, 0.1, 0.05, 0.05], [0.51, 0.5, 0.2, 0.2],
                            [0.9, 0.9, 0.1, 0.1]])
    matcher = qdetr.ForegroundQueryMatcher(tau=0.5)
    selected, partners = matcher(student, teacher, gt)
    assert selected.tolist() == [0, 1] and partners.tolist() == [1, 1]  # shared teacher query
    all_queries, _ = qdetr.ForegroundQueryMatcher(tau=None)(student, teacher, gt)
    assert all_queries.tolist() == [0, 1, 2]
    strict, _ = qdetr.ForegroundQueryMatcher(tau=0.99)(student, teacher, gt)
    assert strict.tolist() == [0]
    none, none_partners = matcher(student, teacher, torch.zeros(0, 4))  # no objects
    assert none.numel() == 0 and none_partners.numel() == 0


def test_drd_loss_is_zero_for_equal_features_and_trains_only_the_student():
    loss = qdetr.DRDLoss()
    student = torch.randn(2, 5, 8, requires_grad=True)
    teacher = student.detach().clone().requires_grad_()
    pairs = [(torch.tensor([0, 3]), torch.tensor([0, 3])), (torch.tensor([]).long(), ) * 2]
    assert loss(student, teacher, pairs).item() == 0.0
    shifted = [(torch.tensor([0, 3]), torch.tensor([1, 1])), pairs[1]]
    value = loss(student, teacher, shifted)
    expected = torch.stack([(student[0, 0] - teacher[0, 1]).norm(),
                            (student[0, 3] - teacher[0, 1]).norm()]).mean()
    torch.testing.assert_close(value, expected)
    value.backward()
    assert has_nonzero_grad(student) and teacher.grad is None
    empty = loss(student, teacher, [pairs[1], pairs[1]])
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match='3 images of pairs'):
        loss(student, teacher, pairs + pairs[:1])


QUANT = dict(type='mmext.ModuleSwap', w_bits=4, a_bits=4, attn_bits=8,
             skip=['backbone.conv1', 'bbox_head.*'])


@pytest.fixture
def teacher_checkpoint(tmp_path):
    """A float tiny Conditional DETR's config (dict) and checkpoint written by the test."""
    cfg = tiny_conditional_detr_cfg()
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        torch.manual_seed(1)
        model = MODELS.build(cfg)
    path = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    return dict(config=dict(model=cfg, default_scope='mmdet'), checkpoint=str(path)), model


def _build_qdetr(**kwargs):
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmext.registry import MODELS
        return MODELS.build(dict(type='mmext.QDETR', detector=tiny_conditional_detr_cfg(),
                                 quant=QUANT, **kwargs))


def _batch(model):
    from mmdet.testing import demo_mm_inputs
    packed = demo_mm_inputs(2, [[3, 64, 64], [3, 64, 80]], num_items=[2, 0], num_classes=80)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return model.data_preprocessor(packed, True)


def test_qdetr_distills_from_the_teacher_with_alignment(teacher_checkpoint):
    teacher_cfg, float_teacher = teacher_checkpoint
    model = _build_qdetr(distribution_alignment=dict(pattern='decoder.layers.*'),
                         teacher=teacher_cfg, distill=dict(matcher=dict(tau=None)))
    student = model.student
    cross = student.decoder.layers[0].cross_attn
    assert isinstance(cross.attention.q_transform, qdetr.QueryDistributionAlignment)
    assert cross.attention.q_transform.head_dim == 2 * 256 // 8  # content + sine position
    assert isinstance(cross.qcontent_proj, QLinear)
    data = _batch(model)
    with DefaultScope.overwrite_default_scope('mmdet'):
        losses = model(**data, mode='loss')
    assert losses['loss_drd'].item() > 0  # the 4-bit student differs from the teacher
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert has_nonzero_grad(cross.attention.q_transform.gamma)
    assert has_nonzero_grad(cross.qcontent_proj.weight)
    teacher = model.teacher
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    torch.testing.assert_close(teacher.bbox_head.fc_cls.weight, float_teacher.bbox_head.fc_cls.weight)
    # checkpoints hold the student's own keys only: no prefix, no teacher
    keys = list(model.state_dict())
    assert 'decoder.layers.0.cross_attn.attention.q_transform.gamma' in keys
    assert not any(k.startswith(('student.', 'teacher')) for k in keys)
    with DefaultScope.overwrite_default_scope('mmdet'):
        predictions = model(**_batch(model), mode='predict')
    assert len(predictions) == 2 and len(predictions[0].pred_instances) == 100  # max_per_img


def test_a_float_checkpoint_loads_into_the_student(teacher_checkpoint):
    teacher_cfg, float_model = teacher_checkpoint
    model = _build_qdetr()
    missing, unexpected = model.load_state_dict(float_model.state_dict(), strict=False)
    assert not unexpected and all('quantizer' in k for k in missing)
    torch.testing.assert_close(model.student.decoder.layers[1].ffn.layers[1].weight,
                               float_model.decoder.layers[1].ffn.layers[1].weight)


def test_missing_or_mismatched_teacher_checkpoint_is_named(teacher_checkpoint, tmp_path):
    teacher_cfg, _ = teacher_checkpoint
    missing = _build_qdetr(teacher=dict(teacher_cfg, checkpoint=str(tmp_path / 'none.pth')))
    with pytest.raises(FileNotFoundError, match='train the real-valued teacher first'):
        _ = missing.teacher  # checked when training needs it: testing never does
    with pytest.raises(ValueError, match='teacher needs dict'):
        _build_qdetr(teacher=dict(config=teacher_cfg['config']))
    wrong = tmp_path / 'wrong.pth'
    torch.save(dict(state_dict={'backbone.conv1.weight': torch.zeros(1)}), wrong)
    model = _build_qdetr(teacher=dict(teacher_cfg, checkpoint=str(wrong)))
    with pytest.raises(ValueError, match='does not fit the teacher config'):
        _ = model.teacher


def test_qdetr_on_dab_detr_aligns_and_distills(tmp_path):
    """DAB-DETR (mmdet's ConditionalAttention with anchor-box queries) as student and teacher."""
    cfg = tiny_conditional_detr_cfg('mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py')
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS as MMDET_MODELS
        torch.manual_seed(1)
        float_model = MMDET_MODELS.build(cfg)
        torch.save(dict(state_dict=float_model.state_dict()), tmp_path / 'dab.pth')
        from mmext.registry import MODELS
        model = MODELS.build(dict(
            type='mmext.QDETR', detector=cfg, quant=QUANT,
            distribution_alignment=dict(pattern='decoder.layers.*', init='fit'),
            teacher=dict(config=dict(model=cfg), checkpoint=str(tmp_path / 'dab.pth')),
            distill=dict(matcher=dict(tau=None))))
    aligned = [m for m in model.student.modules()
               if isinstance(m, qdetr.QueryDistributionAlignment)]
    assert len(aligned) == 4  # self- and cross-attention of both decoder layers
    with DefaultScope.overwrite_default_scope('mmdet'):
        losses = model(**_batch(model), mode='loss')
    assert losses['loss_drd'].item() > 0
    assert all(m.initialized for m in aligned)  # fitted on this first batch
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert has_nonzero_grad(aligned[0].gamma)
