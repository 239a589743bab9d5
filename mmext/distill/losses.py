"""Distillation losses shared by the methods."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmext.registry import MODELS


@MODELS.register_module()
class LogitDistillationLoss(nn.Module):
    """Soft-target distillation of class logits: ``T^2 KL(softmax(t / T) || softmax(s / T))``,
    batch mean (ReActNet's distribution loss at T = 1, up to the teacher's entropy).

    ``forward(student, teacher)``: logits (B, C) each -> scalar; teacher side detached.
    """

    def __init__(self, temperature: float = 1.0, loss_weight: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'LogitDistillationLoss temperature must be > 0, got {temperature}')
        self.temperature, self.loss_weight = temperature, loss_weight

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        return self.loss_weight * t * t * F.kl_div(
            F.log_softmax(student / t, dim=-1), F.log_softmax(teacher.detach() / t, dim=-1),
            log_target=True, reduction='batchmean')
