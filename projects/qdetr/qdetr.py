"""``mmext.QDETR``: a quantized DETR-family student, optionally with distribution alignment and
distilled from a frozen real-valued teacher by foreground-aware query matching (Q-DETR).

    model = dict(
        type='mmext.QDETR',
        detector=<the float detector's config, e.g. {{_base_.model}}>,
        quant=dict(type='mmext.ModuleSwap', w_bits=4, a_bits=4, attn_bits=8, ...),
        distribution_alignment=dict(pattern='decoder.layers.*'),      # or None
        teacher=dict(config='teacher_config.py', checkpoint='teacher.pth'),  # or None
        distill=dict(matcher=dict(type='mmext.ForegroundQueryMatcher', tau=0.5),
                     loss=dict(type='mmext.DRDLoss', loss_weight=1.0)))

Checkpoints hold the student's own keys (no ``student.`` prefix, no teacher), so a float
detector's checkpoint loads into the student (``load_from``, QAT), and a QDETR checkpoint is the
quantized detector's. The teacher is built, and its files checked, on the first training step:
testing, ``tools/test.py`` and mmdet's analysis tools never need it.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from torch import nn

from mmext.distill import TeacherStudentModel
from mmext.quant import QuantizedModel, twin_attention
from mmext.registry import MODELS, TASK_UTILS

from .distribution_alignment import add_distribution_alignment, attention_owners


@contextmanager
def record_coattended_features(model: nn.Module, pattern: str):
    """Within the block, ``features[name]`` holds each matching attention's co-attended
    feature, the concatenated per-head ``P v`` (B, L, H * d_v) before the output projection."""
    features, handles = {}, []
    for name, sdpa in attention_owners(model, pattern).items():
        def hook(module, args, output, name=name):
            out = output[0] if isinstance(output, tuple) else output  # (B, H, L, d_v)
            features[name] = out.transpose(1, 2).flatten(2)
        handles.append(sdpa.register_forward_hook(hook))
    try:
        yield features
    finally:
        for handle in handles:
            handle.remove()


def last_decoder_layer_boxes(head_outputs: tuple) -> torch.Tensor:
    """The last decoder layer's boxes (B, Nq, 4), normalised cx, cy, w, h, from the output of
    a DETR-family head's ``forward`` (and of ``detector(..., mode='tensor')``):
    ``(all_layers_cls_scores (L, B, Nq, C), all_layers_bbox_preds (L, B, Nq, 4))``."""
    if not isinstance(head_outputs, (tuple, list)) or len(head_outputs) < 2:
        raise TypeError('expected a DETR head output (all_layers_cls_scores, '
                        f'all_layers_bbox_preds), got {type(head_outputs).__name__}')
    return head_outputs[1][-1]


def normalised_gt_boxes(data_samples) -> list[torch.Tensor]:
    """Each image's ground-truth boxes as (G, 4) cx, cy, w, h divided by the image size."""
    boxes = []
    for sample in data_samples:
        h, w = sample.metainfo['img_shape'][:2]
        gt = sample.gt_instances.bboxes
        gt = gt.tensor if hasattr(gt, 'tensor') else gt
        boxes.append(bbox_xyxy_to_cxcywh(gt) / gt.new_tensor([w, h, w, h]))
    return boxes


@MODELS.register_module()
class QDETR(TeacherStudentModel):
    """Quantized DETR student, distribution alignment and DRD distillation.

    Args:
        detector: config of the float DETR-family detector (DETR, Conditional DETR, DAB-DETR).
        quant: the :class:`mmext.quant.ModuleSwap` config that quantizes it.
        distribution_alignment: ``dict(pattern=..., init=...)``: owners of the attention whose
            queries are aligned (Q-DETR: every decoder attention); None for none.
        teacher: ``dict(config=..., checkpoint=...)`` of the real-valued teacher (a config file
            or dict whose ``model`` is the teacher, and its trained checkpoint); None trains
            without distillation (the LSQ baseline and +DA rows).
        distill: ``matcher`` (ForegroundQueryMatcher config), ``loss`` (DRDLoss config) and
            ``feature_pattern`` (owners of the cross-attention whose features are distilled;
            all matching decoder layers, averaged).
    """

    def __init__(self, detector: dict, quant: dict, distribution_alignment: dict | None = None,
                 teacher: dict | None = None, distill: dict | None = None,
                 init_cfg: dict | None = None):
        student = QuantizedModel(copy.deepcopy(detector), quant)
        super().__init__(student, teacher, default_scope='mmdet', init_cfg=init_cfg)
        if distribution_alignment is not None:
            add_distribution_alignment(student, **distribution_alignment)
        distill = dict(distill or {})
        self.feature_pattern = distill.get('feature_pattern', 'decoder.layers.*.cross_attn*')
        self.matcher = TASK_UTILS.build(
            dict(dict(type='mmext.ForegroundQueryMatcher'), **distill.get('matcher', {})))
        self.drd_loss = MODELS.build(dict(dict(type='mmext.DRDLoss'), **distill.get('loss', {})))
        if teacher is not None:
            # the student's float attention (if the swap kept any) gets a twin to record from
            twin_attention(student, pattern=self.feature_pattern)
            if not attention_owners(student, self.feature_pattern):
                raise ValueError(f'distill.feature_pattern {self.feature_pattern!r} matches no '
                                 "attention of the student's decoder")

    def prepare_teacher(self, teacher: nn.Module) -> nn.Module:
        """Give the teacher's attention recordable twins (32 bits: the same float computation)."""
        twin_attention(teacher, pattern=self.feature_pattern)
        if not attention_owners(teacher, self.feature_pattern):
            raise ValueError(f'distill.feature_pattern {self.feature_pattern!r} matches no '
                             'attention of the teacher')
        return teacher

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        if self.teacher_cfg is None:
            return self.student.loss(inputs, data_samples)
        teacher = self.teacher
        with torch.no_grad(), record_coattended_features(teacher, self.feature_pattern) as t_feat:
            teacher_boxes = last_decoder_layer_boxes(teacher(inputs, data_samples,
                                                             mode='tensor'))
        head_outputs = []
        handle = self.student.bbox_head.register_forward_hook(
            lambda module, args, output: head_outputs.append(output))
        try:
            with record_coattended_features(self.student, self.feature_pattern) as s_feat:
                losses = self.student.loss(inputs, data_samples)
        finally:
            handle.remove()
        student_boxes = last_decoder_layer_boxes(head_outputs[0]).detach()
        gts = normalised_gt_boxes(data_samples)
        pairs = [self.matcher(student_boxes[b], teacher_boxes[b], gts[b])
                 for b in range(len(gts))]
        if set(s_feat) != set(t_feat):
            raise ValueError(f'student and teacher record different attention layers: '
                             f'{sorted(set(s_feat) ^ set(t_feat))}; the teacher needs the '
                             "student's decoder depth")
        losses['loss_drd'] = sum(self.drd_loss(s_feat[k], t_feat[k], pairs)
                                 for k in s_feat) / len(s_feat)
        return losses
