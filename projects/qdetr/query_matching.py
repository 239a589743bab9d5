"""Q-DETR's foreground-aware query matching (FQM) and distribution rectification distillation
(DRD) loss, the upper level (absent from the official code).

Per image, with boxes in normalised (cx, cy, w, h):

1. ``M[i, j] = GIoU(gt_i, student_j)``; ``G_i = max_j M[i, j]``.
2. Selected student queries ``J = {j : exists i, M[i, j] > tau * G_i}``; an image without
   objects contributes none.
3. Teacher partner ``k*(j) = argmax_k mu1 * GIoU(student_j, teacher_k) - mu2 * |student_j -
   teacher_k|_1`` (several students may share one teacher query).
4. ``L_DRD = mean over selected pairs of || D_S[j] - sg(D_T[k*(j)]) ||_2`` on the co-attended
   decoder features D (the concatenated per-head ``P v`` of the cross-attention), averaged over
   the recorded decoder layers.
"""
from __future__ import annotations

import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from torch import nn

from mmext.registry import MODELS, TASK_UTILS


@TASK_UTILS.register_module()
class ForegroundQueryMatcher:
    """Select foreground student queries and pair each with a teacher query.

    Args:
        tau: selection threshold relative to each object's best GIoU: a query is kept if its
            GIoU with some object exceeds tau times that object's best (tau = 0: any positive
            GIoU). ``None`` keeps every query of an image that has objects (the "imitate all
            queries" ablation).
        giou_weight, l1_weight: mu1 and mu2 of the partner score (DETR's matcher weights).
    """

    def __init__(self, tau: float | None = 0.5, giou_weight: float = 2.0,
                 l1_weight: float = 5.0):
        self.tau, self.giou_weight, self.l1_weight = tau, giou_weight, l1_weight

    @torch.no_grad()
    def __call__(self, student_boxes: torch.Tensor, teacher_boxes: torch.Tensor,
                 gt_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """student_boxes (Nq, 4), teacher_boxes (Nt, 4), gt_boxes (G, 4), all normalised
        cxcywh -> (student indices (J,), teacher partner indices (J,))."""
        empty = torch.zeros(0, dtype=torch.long, device=student_boxes.device)
        if gt_boxes.numel() == 0 or student_boxes.numel() == 0:
            return empty, empty
        if self.tau is None:
            selected = torch.arange(len(student_boxes), device=student_boxes.device)
        else:
            giou_gt = bbox_overlaps(bbox_cxcywh_to_xyxy(gt_boxes),
                                    bbox_cxcywh_to_xyxy(student_boxes), mode='giou')
            best = giou_gt.max(dim=1, keepdim=True).values  # (G, 1)
            selected = (giou_gt > self.tau * best).any(dim=0).nonzero(as_tuple=True)[0]
        if selected.numel() == 0:
            return empty, empty
        chosen = student_boxes[selected]
        score = self.giou_weight * bbox_overlaps(
            bbox_cxcywh_to_xyxy(chosen), bbox_cxcywh_to_xyxy(teacher_boxes), mode='giou') - \
            self.l1_weight * torch.cdist(chosen, teacher_boxes, p=1)
        return selected, score.argmax(dim=1)


@MODELS.register_module()
class DRDLoss(nn.Module):
    """Mean L2 distance between selected student features and their teacher partners'
    (teacher side detached).

    ``forward(student (B, Nq, C), teacher (B, Nt, C), pairs)`` with ``pairs`` a list of B
    (student indices, teacher indices) -> scalar; zero, still attached to the student's graph,
    when no image has a pair.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student: torch.Tensor, teacher: torch.Tensor,
                pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        if student.shape[0] != len(pairs) or teacher.shape[0] != len(pairs):
            raise ValueError(f'DRDLoss: {len(pairs)} images of pairs for student features '
                             f'{tuple(student.shape)} and teacher {tuple(teacher.shape)}')
        distances = [
            (student[b, s] - teacher[b, t].detach()).norm(dim=-1)
            for b, (s, t) in enumerate(pairs) if s.numel()
        ]
        if not distances:
            return student.sum() * 0.0
        return self.loss_weight * torch.cat(distances).mean()
