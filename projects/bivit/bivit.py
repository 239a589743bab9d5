"""``mmext.BiViT``: a binarized mmpretrain ViT / Swin classifier, optionally distilled from a
frozen real-valued teacher.

    model = dict(
        type='mmext.BiViT',
        classifier=<the student classifier's config>,
        quant=dict(type='mmext.BiViTSwap', learnable_scale=True, qk_norm=True),
        teacher=dict(config='teacher_config.py', checkpoint='teacher.pth'),   # or None
        distill=dict(rank=dict(type='mmext.RankingAwareAttentionLoss', loss_weight=1.0),
                     logit=None))

Two ways to distil the class logits, chosen by the classifier's head:

- **hard** (DeiT's, Bi-ViT's default for DeiT): the classifier is a
  :class:`DistillationTokenViT` with a :class:`HardDistillationHead`; the head gets the
  teacher's logits and gives ``loss_cls`` (labels, class token) and ``loss_dist`` (the
  teacher's argmax, distillation token). ``distill.logit`` must be None.
- **soft** (any other head, e.g. Swin's): the classifier's own loss plus ``loss_logit``,
  :class:`LogitDistillationLoss` (KL to the teacher's softened logits), if ``distill.logit``.

``loss_rank`` (if ``distill.rank``) is the ranking-aware attention loss averaged over all
attention layers, on the tokens student and teacher share (a plain teacher has no
distillation token). Checkpoints hold the student's own keys; testing never builds the
teacher.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from mmext.distill import LogitDistillationLoss, TeacherStudentModel  # noqa: F401 (re-export)
from mmext.distill.classifier import loss_with_logits
from mmext.quant import QuantizedModel, twin_attention
from mmext.registry import MODELS

from .distillation_token import HardDistillationHead
from .ranking import num_extra_tokens, paired_attention_logits, record_attention_logits

DISTILL_KEYS = ('rank', 'logit')


@MODELS.register_module()
class BiViT(TeacherStudentModel):
    """Binarized ViT / Swin classifier with hard or soft logit distillation and ranking-aware
    attention distillation.

    Args:
        classifier: config of the student mmpretrain ``ImageClassifier`` (float; ``quant``
            binarizes it). A :class:`HardDistillationHead` selects hard distillation.
        quant: the binarizing swap (:class:`BiViTSwap` config).
        teacher: ``dict(config=..., checkpoint=...)`` of the real-valued teacher (the same
            depth, heads and patch grid: the ranking loss pairs attention layers by name); None
            trains the student on the labels alone (the rows without distillation).
        distill: ``rank`` (RankingAwareAttentionLoss config) and ``logit``
            (LogitDistillationLoss config); each None or absent for off.
        data_preprocessor: the config's top-level one (mmpretrain keeps it there), handed to
            the classifier unless it has its own.

    A teacher that no loss uses, and hard and soft logit distillation together, are refused.
    A distillation-token head without a teacher builds and predicts (testing, diagnostics)
    but cannot be trained: its loss needs the teacher's logits.
    """

    def __init__(self, classifier: dict, quant: dict, teacher: dict | None = None,
                 distill: dict | None = None, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None):
        super().__init__(QuantizedModel(copy.deepcopy(classifier), quant, data_preprocessor),
                         teacher, default_scope='mmpretrain', init_cfg=init_cfg)
        distill = dict(distill or {})
        unknown = set(distill) - set(DISTILL_KEYS)
        if unknown:
            raise ValueError(f'BiViT distill takes {DISTILL_KEYS}, got {sorted(unknown)}')
        self.rank_loss = MODELS.build(distill['rank']) if distill.get('rank') else None
        self.logit_loss = MODELS.build(distill['logit']) if distill.get('logit') else None
        self.hard_distillation = isinstance(self.student.head, HardDistillationHead)
        self._check_losses(teacher is not None)

    def _check_losses(self, has_teacher: bool) -> None:
        if self.hard_distillation and self.logit_loss is not None:
            raise ValueError('hard distillation (HardDistillationHead) and soft logit '
                             'distillation (distill.logit) are alternatives: set distill.logit '
                             'to None or use a plain head')
        uses_teacher = self.hard_distillation or self.logit_loss or self.rank_loss
        if has_teacher and not uses_teacher:
            raise ValueError('BiViT has a teacher but no loss that uses it (no '
                             'HardDistillationHead, distill.logit or distill.rank): set '
                             'model.teacher=None or name the distillation losses')

    def prepare_teacher(self, teacher: nn.Module) -> nn.Module:
        twin_attention(teacher)  # float attention through a QuantizedSDPA: logits recordable
        return teacher

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        if self.teacher_cfg is None:
            if self.hard_distillation:
                raise ValueError('the HardDistillationHead trains its distillation token on a '
                                 "teacher's argmax: give model.teacher, or use a plain "
                                 'classifier (VisionTransformer, VisionTransformerClsHead) for '
                                 'training without one')
            return self.student.loss(inputs, data_samples)
        teacher = self.teacher
        with torch.no_grad(), record_attention_logits(teacher) as t_logits:
            t_scores = teacher(inputs, mode='tensor')
        with record_attention_logits(self.student) as s_logits:
            if self.hard_distillation:
                losses = self.student.head.loss(self.student.extract_feat(inputs), data_samples,
                                                teacher_logits=t_scores)
            else:
                losses, scores = loss_with_logits(self.student, inputs, data_samples)
                if self.logit_loss is not None:
                    losses['loss_logit'] = self.logit_loss(scores, t_scores)
        if self.rank_loss is not None:
            pairs = paired_attention_logits(s_logits, t_logits, num_extra_tokens(self.student),
                                            num_extra_tokens(teacher))
            losses['loss_rank'] = sum(self.rank_loss(s, t) for s, t in pairs.values()) / len(pairs)
        return losses
