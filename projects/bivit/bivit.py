"""``mmext.BiViT``: a binarized mmpretrain ViT / Swin classifier, optionally distilled from a
frozen real-valued teacher with the ranking-aware attention loss and logit distillation.

    model = dict(
        type='mmext.BiViT',
        classifier=<the float classifier's config, e.g. {{_base_.model}}>,
        quant=dict(type='mmext.BiViTSwap', learnable_scale=True, qk_norm=True),
        teacher=dict(config='teacher_config.py', checkpoint='teacher.pth'),   # or None
        distill=dict(rank=dict(type='mmext.RankingAwareAttentionLoss', loss_weight=1.0),
                     logit=dict(type='mmext.LogitDistillationLoss', loss_weight=0.5)))

Training loss: the classifier's own loss (CE, label smoothing as its head says) + ``loss_logit``
+ ``loss_rank``, the latter averaged over all attention layers. Checkpoints hold the student's
own keys; testing never builds the teacher.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from mmext.distill import LogitDistillationLoss, TeacherStudentModel  # noqa: F401 (re-export)
from mmext.distill.classifier import loss_with_logits
from mmext.quant import QuantizedModel, twin_attention
from mmext.registry import MODELS

from .ranking import record_attention_logits


@MODELS.register_module()
class BiViT(TeacherStudentModel):
    """Binarized ViT / Swin classifier with ranking-aware distillation.

    Args:
        classifier: config of the float mmpretrain ``ImageClassifier``.
        quant: the binarizing swap (:class:`BiViTSwap` config).
        teacher: ``dict(config=..., checkpoint=...)`` of the real-valued teacher (the same
            architecture: the ranking loss pairs attention layers by name); None trains the
            student alone (the baseline and +scaling rows).
        distill: ``rank`` (RankingAwareAttentionLoss config, or None) and ``logit``
            (LogitDistillationLoss config, or None).
        data_preprocessor: the config's top-level one (mmpretrain keeps it there), handed to
            the classifier unless it has its own.
    """

    def __init__(self, classifier: dict, quant: dict, teacher: dict | None = None,
                 distill: dict | None = None, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None):
        super().__init__(QuantizedModel(copy.deepcopy(classifier), quant, data_preprocessor),
                         teacher, default_scope='mmpretrain', init_cfg=init_cfg)
        distill = {**dict(rank=dict(type='mmext.RankingAwareAttentionLoss'),
                          logit=dict(type='mmext.LogitDistillationLoss', loss_weight=0.5)),
                   **(distill or {})}
        unknown = set(distill) - {'rank', 'logit'}
        if unknown:
            raise ValueError(f'BiViT distill takes rank and logit, got {sorted(unknown)}')
        self.rank_loss = MODELS.build(distill['rank']) if distill['rank'] else None
        self.logit_loss = MODELS.build(distill['logit']) if distill['logit'] else None

    def prepare_teacher(self, teacher: nn.Module) -> nn.Module:
        twin_attention(teacher)  # float attention through a QuantizedSDPA: logits recordable
        return teacher

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        if self.teacher_cfg is None:
            return self.student.loss(inputs, data_samples)
        teacher = self.teacher
        with torch.no_grad(), record_attention_logits(teacher) as t_logits:
            t_scores = teacher(inputs, mode='tensor')
        with record_attention_logits(self.student) as s_logits:
            losses, scores = loss_with_logits(self.student, inputs, data_samples)
        if self.logit_loss is not None:
            losses['loss_logit'] = self.logit_loss(scores, t_scores)
        if self.rank_loss is not None:
            if set(s_logits) != set(t_logits):
                raise ValueError('student and teacher have different attention layers: '
                                 f'{sorted(set(s_logits) ^ set(t_logits))}; the ranking loss '
                                 "needs the student's architecture in the teacher")
            losses['loss_rank'] = sum(self.rank_loss(s_logits[k], t_logits[k])
                                      for k in s_logits) / len(s_logits)
        return losses
