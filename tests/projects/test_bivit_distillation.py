"""Bi-ViT's DeiT hard distillation: the distillation token, its head, the loss against the
teacher's argmax, test-time averaging and starting from a plain ViT checkpoint."""
import logging
import warnings

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint

import projects.bivit as bivit
from mmext.quant import QLinear

from .test_bivit import _binarize, _build, tiny_vit_cfg

CE_HALF = dict(type='CrossEntropyLoss', loss_weight=0.5)


class _ListHandler(logging.Handler):
    """Keeps the messages logged through it."""

    def __init__(self, messages: list):
        super().__init__(level=logging.DEBUG)
        self.messages = messages

    def emit(self, record):
        self.messages.append(record.getMessage())


def tiny_distilled_cfg(img_size: int = 16) -> dict:
    """tiny_vit_cfg's classifier with a distillation token: DeiT's hard distillation."""
    cfg = tiny_vit_cfg()
    cfg['backbone'].update(type='mmext.DistillationTokenViT', img_size=img_size)
    cfg['head'] = dict(type='mmext.HardDistillationHead', num_classes=5, in_channels=32,
                       loss=dict(type='CrossEntropyLoss', loss_weight=0.5),
                       distill_loss=CE_HALF)
    return cfg


def _samples(labels):
    from mmpretrain.structures import DataSample
    return [DataSample().set_gt_label(int(i)) for i in labels]


def _bivit(classifier: dict, teacher_checkpoint, **kwargs):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmext.registry import MODELS
        return MODELS.build(dict(
            type='mmext.BiViT', classifier=classifier, quant=dict(type='mmext.BiViTSwap'),
            teacher=dict(config=dict(model=tiny_vit_cfg()), checkpoint=str(teacher_checkpoint)),
            **kwargs))


@pytest.fixture
def plain_checkpoint(tmp_path):
    """A real-valued plain (no distillation token) tiny ViT's checkpoint: the teacher and the
    start checkpoint, as mmpretrain's DeiT-T/S/B checkpoints are."""
    torch.manual_seed(0)
    model = _build(tiny_vit_cfg())
    for param in (model.backbone.cls_token, model.backbone.pos_embed, model.head.layers.head.weight,
                  model.head.layers.head.bias):  # trained values, not the zeros they start at
        torch.nn.init.normal_(param.data)
    path = tmp_path / 'plain_vit.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def _head(**kwargs):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmext.registry import MODELS
        return MODELS.build(dict(type='mmext.HardDistillationHead', num_classes=3,
                                 in_channels=4, loss=dict(type='CrossEntropyLoss',
                                                          loss_weight=0.5),
                                 distill_loss=CE_HALF, **kwargs))


def _hand_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -log softmax(logits)[target], written out."""
    log_probs = logits - logits.exp().sum(dim=1, keepdim=True).log()
    return -log_probs[torch.arange(len(target)), target].mean()


def test_hard_distillation_loss_is_ce_against_the_teachers_argmax_on_the_dist_head():
    torch.manual_seed(0)
    head = _head()
    torch.nn.init.normal_(head.layers.head.weight)
    torch.nn.init.normal_(head.layers.head_dist.weight)
    cls_token, dist_token = torch.randn(6, 4), torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    teacher_labels = torch.tensor([1, 1, 0, 0, 2, 2])  # disagrees with four labels
    teacher = torch.randn(6, 3) + 5 * F.one_hot(teacher_labels, 3)
    assert torch.equal(teacher.argmax(1), teacher_labels)
    losses = head.loss(((cls_token, dist_token), ), _samples(labels), teacher_logits=teacher)
    assert set(losses) == {'loss_cls', 'loss_dist'}
    w, b = head.layers.head.weight, head.layers.head.bias
    wd, bd = head.layers.head_dist.weight, head.layers.head_dist.bias
    expected_dist = 0.5 * _hand_ce(dist_token @ wd.T + bd, teacher_labels)
    torch.testing.assert_close(losses['loss_dist'], expected_dist)
    torch.testing.assert_close(losses['loss_cls'], 0.5 * _hand_ce(cls_token @ w.T + b, labels))
    # hard labels: teacher logits with the same argmax give the same loss ...
    sharper = head.loss(((cls_token, dist_token), ), _samples(labels),
                        teacher_logits=teacher * 3 + 1)
    torch.testing.assert_close(sharper['loss_dist'], losses['loss_dist'])
    # ... and it is not the labels' CE on the distillation head
    assert not torch.allclose(losses['loss_dist'], 0.5 * _hand_ce(dist_token @ wd.T + bd, labels))
    # the teacher side gets no gradient
    teacher.requires_grad_()
    head.loss(((cls_token, dist_token), ), _samples(labels),
              teacher_logits=teacher)['loss_dist'].backward()
    assert teacher.grad is None


def test_prediction_averages_the_two_heads():
    torch.manual_seed(0)
    head = _head()
    torch.nn.init.normal_(head.layers.head.weight)
    torch.nn.init.normal_(head.layers.head_dist.weight)
    cls_token, dist_token = torch.randn(2, 4), torch.randn(2, 4)
    average = (head.layers.head(cls_token) + head.layers.head_dist(dist_token)) / 2
    head.train()  # no mmpretrain "cannot train the distilled DeiT" warning either
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        torch.testing.assert_close(head(((cls_token, dist_token), )), average)
    head.eval()
    predictions = head.predict(((cls_token, dist_token), ))
    torch.testing.assert_close(torch.stack([p.pred_score for p in predictions]),
                               average.softmax(1))


def test_hard_head_refuses_missing_teacher_wrong_classes_and_plain_features():
    head = _head()
    feats = ((torch.randn(2, 4), torch.randn(2, 4)), )
    with pytest.raises(ValueError, match='needs teacher_logits'):
        head.loss(feats, _samples([0, 1]))
    with pytest.raises(ValueError, match='same classes'):
        head.loss(feats, _samples([0, 1]), teacher_logits=torch.randn(2, 7))
    with pytest.raises(ValueError, match='distillation token'):
        head((torch.randn(2, 4), ))  # a plain ViT's class token alone


def test_swap_binarizes_the_distilled_backbone_as_the_plain_one():
    plain = _binarize(_build(tiny_vit_cfg()))
    distilled = _binarize(_build(tiny_distilled_cfg()))

    def binarized(model):
        return sorted(n for n, m in model.named_modules() if isinstance(m, QLinear))

    assert binarized(distilled) == binarized(plain)  # the same Linear layers, none of the heads
    assert len(bivit.attention_cores(distilled)) == len(bivit.attention_cores(plain)) == 2
    assert not isinstance(distilled.head.layers.head_dist, QLinear)  # both heads real-valued
    assert isinstance(distilled.backbone.dist_token, torch.nn.Parameter)
    assert distilled(torch.randn(2, 1, 16, 16), mode='tensor').shape == (2, 5)


def test_bivit_hard_distillation_forward_loss_backward(plain_checkpoint):
    torch.manual_seed(0)
    model = _bivit(tiny_distilled_cfg(), plain_checkpoint,
                   distill=dict(rank=dict(type='mmext.RankingAwareAttentionLoss')))
    load_checkpoint(model, str(plain_checkpoint), strict=False, logger='silent')
    assert model.hard_distillation
    data = model.data_preprocessor(dict(inputs=list(torch.rand(4, 1, 16, 16) * 255),
                                        data_samples=_samples([0, 1, 2, 3])), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_dist', 'loss_rank'}
    sum(losses.values()).backward()
    student = model.student
    for name in ('head.layers.head.weight', 'head.layers.head_dist.weight',
                 'backbone.cls_token', 'backbone.dist_token',
                 'backbone.layers.0.attn.scaled_dot_product_attention.q_quantizer.scale'):
        grad = student.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.teacher.parameters())
    # the model's loss_dist is 0.5 CE(teacher's argmax) on the distillation head's logits
    with torch.no_grad():
        teacher_labels = model.teacher(data['inputs'], mode='tensor').argmax(1)
        _, dist_logits = student.head.token_logits(student.extract_feat(data['inputs']))
    torch.testing.assert_close(losses['loss_dist'].detach(),
                               0.5 * F.cross_entropy(dist_logits, teacher_labels))
    # prediction: one score per image from the averaged heads, no teacher involved
    model.eval()
    with torch.no_grad():
        cls_logits, dist_logits = student.head.token_logits(student.extract_feat(data['inputs']))
        scores = model(data['inputs'], mode='tensor')
    torch.testing.assert_close(scores, (cls_logits + dist_logits) / 2)


def test_ranking_pairs_the_tokens_a_plain_teacher_has():
    student = torch.arange(16.0).reshape(1, 1, 4, 4)  # tokens [cls, dist, p1, p2]
    teacher = torch.zeros(1, 1, 3, 3)  # [cls, p1, p2]
    (s, t), = bivit.paired_attention_logits({'l0': student}, {'l0': teacher}, 2, 1).values()
    torch.testing.assert_close(s, student[..., [0, 2, 3], :][..., [0, 2, 3]])
    assert t is teacher
    with pytest.raises(ValueError, match='every token of the teacher'):
        bivit.paired_attention_logits({'l0': teacher}, {'l0': student}, 1, 2)
    with pytest.raises(ValueError, match='different attention layers'):
        bivit.paired_attention_logits({'l0': student}, {'l1': teacher}, 2, 1)


def test_bivit_refuses_inconsistent_distillation(plain_checkpoint):
    # a distillation token without a teacher: it predicts (testing, diagnostics) but does not
    # train, and says why
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmext.registry import MODELS
        alone = MODELS.build(dict(type='mmext.BiViT', classifier=tiny_distilled_cfg(),
                                  quant=dict(type='mmext.BiViTSwap')))
    assert alone(torch.randn(2, 1, 16, 16), mode='tensor').shape == (2, 5)
    with pytest.raises(ValueError, match='give model.teacher'):
        alone(torch.randn(2, 1, 16, 16), _samples([0, 1]), mode='loss')
    with pytest.raises(ValueError, match='alternatives'):
        _bivit(tiny_distilled_cfg(), plain_checkpoint,
               distill=dict(logit=dict(type='mmext.LogitDistillationLoss')))
    with pytest.raises(ValueError, match='no loss that uses it'):
        _bivit(tiny_vit_cfg(), plain_checkpoint)
    with pytest.raises(ValueError, match='distill takes'):
        _bivit(tiny_vit_cfg(), plain_checkpoint, distill=dict(hard=True))


def test_a_plain_vit_checkpoint_starts_the_distillation_token_as_the_class_tokens_copy(
        plain_checkpoint, tmp_path):
    torch.manual_seed(1)
    model = _bivit(tiny_distilled_cfg(), plain_checkpoint,
                   distill=dict(rank=dict(type='mmext.RankingAwareAttentionLoss')))
    model.student.init_weights()  # what the runner does before load_from
    plain = torch.load(plain_checkpoint)['state_dict']
    assert not torch.allclose(model.student.backbone.dist_token, plain['backbone.cls_token'])
    # the runner's load_from path: mmengine's load_checkpoint, not strict
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('bivit_loading', log_level='INFO')
    messages = []
    handler = _ListHandler(messages)
    logger.addHandler(handler)
    try:
        load_checkpoint(model, str(plain_checkpoint), strict=False, logger=logger)
    finally:
        logger.removeHandler(handler)
    backbone, head = model.student.backbone, model.student.head
    torch.testing.assert_close(backbone.dist_token, plain['backbone.cls_token'])
    torch.testing.assert_close(backbone.cls_token, plain['backbone.cls_token'])
    pos = backbone.pos_embed  # (1, 2 + 16, C): [cls, dist, patches]
    torch.testing.assert_close(pos[:, 0], plain['backbone.pos_embed'][:, 0])
    torch.testing.assert_close(pos[:, 1], plain['backbone.pos_embed'][:, 0])
    torch.testing.assert_close(pos[:, 2:], plain['backbone.pos_embed'][:, 1:])
    for name in ('weight', 'bias'):
        torch.testing.assert_close(getattr(head.layers.head_dist, name),
                                   plain[f'head.layers.head.{name}'])
    # everything else came from the checkpoint; only the binarizers' and qk-norms' own
    # state was absent (it initialises from the first batch / stays as built)
    text = '\n'.join(messages)
    missing = text.split('missing keys in source state_dict: ')[1].split('\n')[0].split(', ')
    assert missing and all('quantizer' in k or '_transform' in k for k in missing), missing
    assert 'unexpected key' not in text and 'size mismatch' not in text
    # the two tokens and heads agree at the start: the averaged prediction is the class head's
    model.eval()
    inputs = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        cls_logits, dist_logits = model.student.head.token_logits(
            model.student.extract_feat(inputs))
    torch.testing.assert_close(cls_logits, dist_logits)
    # a Bi-ViT checkpoint (with its own distillation token) loads as it is
    saved = tmp_path / 'bivit.pth'
    torch.save(dict(state_dict=model.state_dict()), saved)
    again = _bivit(tiny_distilled_cfg(), plain_checkpoint,
                   distill=dict(rank=dict(type='mmext.RankingAwareAttentionLoss')))
    with torch.no_grad():
        again.student(inputs, mode='tensor')  # the binarizers' state exists, as after training
    load_checkpoint(again, str(saved), strict=True, logger='silent')
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, msg=key)


def test_a_plain_checkpoint_at_another_patch_grid_is_resized_after_the_token_is_added(
        plain_checkpoint):
    # start checkpoint at 16 x 16 (4 x 4 patches), student at 24 x 24 (6 x 6 patches)
    model = _bivit(tiny_distilled_cfg(img_size=24), plain_checkpoint,
                   distill=dict(rank=dict(type='mmext.RankingAwareAttentionLoss')))
    load_checkpoint(model, str(plain_checkpoint), strict=False, logger='silent')
    plain = torch.load(plain_checkpoint)['state_dict']
    pos = model.student.backbone.pos_embed
    assert pos.shape == (1, 2 + 36, 32)
    torch.testing.assert_close(pos[:, 1], plain['backbone.pos_embed'][:, 0])


def test_diagnostics_compare_a_distilled_student_with_a_plain_teacher():
    from mmext.quant import twin_attention
    torch.manual_seed(0)
    teacher = _build(tiny_vit_cfg())
    twin_attention(teacher)
    student = _binarize(_build(tiny_distilled_cfg()))
    inputs = torch.randn(4, 1, 16, 16)
    tau = bivit.attention_ranking_agreement(student, teacher, inputs)
    assert -1 < tau < 1
    norms = bivit.attention_input_gradients(student, inputs, _samples([0, 1, 2, 3]))
    assert set(norms) == {'q', 'k', 'v', 'p'} and all(v > 0 for v in norms.values())
