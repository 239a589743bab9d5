"""Losses of MVP-SEG."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmext.registry import MODELS


@MODELS.register_module()
class OrthogonalConstraintLoss(nn.Module):
    """OCLoss: push the K view embeddings of each class apart.

    ``L = 1 / (C K (K - 1)) * sum_c sum_{k != l} (t_ck . t_cl)^2`` on L2-normalised view
    embeddings: 0 when the views of every class are orthogonal, up to 1 when they coincide.

    Args:
        loss_weight: multiplies the loss (0.1 in the configs, our choice).
    """

    def __init__(self, loss_weight: float = 0.1, loss_name: str = 'loss_oc'):
        super().__init__()
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(self, view_embeddings: Tensor) -> Tensor:
        """view_embeddings: (C, K, D) -> scalar."""
        if view_embeddings.ndim != 3:
            raise ValueError(f'expected (classes, views, dim) embeddings, got shape '
                             f'{tuple(view_embeddings.shape)}')
        c, k, _ = view_embeddings.shape
        if k < 2:
            return view_embeddings.sum() * 0
        t = F.normalize(view_embeddings, dim=-1)
        gram = t @ t.transpose(1, 2)  # (C, K, K)
        off_diagonal = gram - torch.diag_embed(torch.diagonal(gram, dim1=1, dim2=2))
        return self.loss_weight * off_diagonal.pow(2).sum() / (c * k * (k - 1))


@MODELS.register_module()
class GlobalPromptLoss(nn.Module):
    """GPR's image-level loss: soft-target cross-entropy between the class-presence logits of an
    image and the normalised multi-hot vector of the labelled classes present in it.

    Args:
        loss_weight: multiplies the loss.
    """

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss_gpr'):
        super().__init__()
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(self, logits: Tensor, present: Tensor) -> Tensor:
        """logits (B, C) with inactive classes at a large negative value; present (B, C) in
        {0, 1}. Images with no labelled class are skipped."""
        counts = present.sum(-1, keepdim=True)
        keep = counts.squeeze(-1) > 0
        if not keep.any():
            return logits.sum() * 0
        target = present[keep] / counts[keep]
        loss = -(target * F.log_softmax(logits[keep], dim=-1)).sum(-1).mean()
        return self.loss_weight * loss
