"""mmext.DistilledClassifier: a student classifier against a frozen teacher of another
architecture, loaded from a checkpoint the test writes."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

from mmext.registry import MODELS

PREPROCESSOR = dict(type='ClsDataPreprocessor', num_classes=10, mean=[73.0], std=[90.0],
                    to_rgb=False)
STUDENT = dict(type='ImageClassifier',
               backbone=dict(type='mmext.DartsNetwork', channels=4, num_cells=3, in_channels=1,
                             genotype="Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', "
                                      "1), ('max_pool_3x3', 0), ('dil_conv_3x3', 2)], "
                                      "normal_concat=[2, 3], reduce=[('avg_pool_3x3', 0), "
                                      "('sep_conv_5x5', 1), ('skip_connect', 2), "
                                      "('dil_conv_5x5', 0)], reduce_concat=[2, 3])"),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=10, in_channels=32))
TEACHER = dict(type='ImageClassifier', data_preprocessor=PREPROCESSOR,
               backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=10, in_channels=512))


@pytest.fixture
def teacher_files(tmp_path):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
        torch.manual_seed(0)
        teacher = MMPRETRAIN_MODELS.build(TEACHER)
    config = tmp_path / 'teacher.py'
    Config(dict(model=TEACHER, default_scope='mmpretrain')).dump(config)
    checkpoint = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict(), meta=dict()), checkpoint)
    return teacher, dict(config=str(config), checkpoint=str(checkpoint))


def _batch(model):
    inputs = [torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8) for _ in range(2)]
    samples = [DataSample().set_gt_label(i) for i in (3, 7)]
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)


@pytest.mark.parametrize('label_loss_weight', [0.0, 1.0])
def test_distilled_classifier_adds_the_teacher_logit_loss(teacher_files, label_loss_weight):
    teacher, teacher_cfg = teacher_files
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(type='mmext.DistilledClassifier', classifier=STUDENT,
                                  teacher=teacher_cfg, label_loss_weight=label_loss_weight,
                                  data_preprocessor=PREPROCESSOR))
        batch = _batch(model)
        losses = model(**batch, mode='loss')
    assert set(losses) == {'loss', 'loss_logit'} and losses['loss_logit'] > 0
    assert (losses['loss'] == 0) == (label_loss_weight == 0)
    # the teacher is the checkpoint's, frozen, and no part of the student's state
    torch.testing.assert_close(model.teacher.backbone.conv1.weight, teacher.backbone.conv1.weight)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert all(not k.startswith(('teacher', 'student.')) for k in model.state_dict())
    sum(losses.values()).backward()
    assert model.student.backbone.stem[0].weight.grad.abs().sum() > 0


def test_distilled_classifier_without_teacher_needs_the_label_loss():
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            pytest.raises(ValueError, match='needs label_loss_weight > 0'):
        MODELS.build(dict(type='mmext.DistilledClassifier', classifier=STUDENT, teacher=None,
                          label_loss_weight=0.0, data_preprocessor=PREPROCESSOR))


def test_building_the_teacher_draws_nothing_from_the_generator(teacher_files):
    # The teacher is built at the first training step; a resumed run sets its generators back
    # before that step, so the build must not move torch's generator (benchmarks/resume_check).
    _, teacher_cfg = teacher_files
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(type='mmext.DistilledClassifier', classifier=STUDENT,
                                  teacher=teacher_cfg, data_preprocessor=PREPROCESSOR))
        torch.manual_seed(3)
        state = torch.get_rng_state()
        assert model.teacher is not None                # built here, on first use
    assert torch.equal(torch.get_rng_state(), state)
