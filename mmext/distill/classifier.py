"""``mmext.DistilledClassifier``: an mmpretrain classifier trained against a frozen teacher's
logits (ReActNet-style distribution loss), optionally with its own label loss."""
from __future__ import annotations

import copy

import torch
from mmengine.registry import DefaultScope

from mmext.registry import MODELS

from .teacher import TeacherStudentModel


def loss_with_logits(classifier, inputs: torch.Tensor, data_samples) -> tuple[dict, torch.Tensor]:
    """An mmpretrain classifier's ``loss`` and the class logits (B, C) its head computed on
    the way, from one forward pass."""
    logits = []
    handle = classifier.head.register_forward_hook(
        lambda module, args, output: logits.append(output))
    try:
        losses = classifier.loss(inputs, data_samples)
    finally:
        handle.remove()
    return losses, logits[0]


@MODELS.register_module()
class DistilledClassifier(TeacherStudentModel):
    """A student classifier distilled from any real-valued teacher classifier.

    Training loss: ``label_loss_weight *`` the student head's own loss (0: distillation only,
    as DCP-NAS's ImageNet retraining) ``+ loss_logit`` (:class:`LogitDistillationLoss`). The
    teacher (``dict(config=..., checkpoint=...)``, any architecture with the same classes and
    image normalisation) is built on first use and never saved; testing uses the student only.

    Args:
        classifier: config of the student ``ImageClassifier``.
        teacher: teacher config and checkpoint, or None (the student alone, label loss only).
        distill: config of the logit loss.
        label_loss_weight: weight of the student's own loss.
        data_preprocessor: the config's top-level one, handed to the student unless it has its
            own.
    """

    def __init__(self, classifier: dict, teacher: dict | None = None,
                 distill: dict | None = None, label_loss_weight: float = 1.0,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        classifier = copy.deepcopy(dict(classifier))
        if data_preprocessor is not None:
            classifier.setdefault('data_preprocessor', data_preprocessor)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
            student = MMPRETRAIN_MODELS.build(classifier)
        super().__init__(student, teacher, default_scope='mmpretrain', init_cfg=init_cfg)
        self.logit_loss = MODELS.build(distill or dict(type='mmext.LogitDistillationLoss'))
        self.label_loss_weight = label_loss_weight
        if teacher is None and not label_loss_weight:
            raise ValueError('DistilledClassifier without a teacher needs label_loss_weight > 0')

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        if self.teacher_cfg is None:
            return self.student.loss(inputs, data_samples)
        with torch.no_grad():
            teacher_logits = self.teacher(inputs, mode='tensor')
        losses, logits = loss_with_logits(self.student, inputs, data_samples)
        losses = {k: v * self.label_loss_weight if k.startswith('loss') else v
                  for k, v in losses.items()}
        losses['loss_logit'] = self.logit_loss(logits, teacher_logits)
        return losses
