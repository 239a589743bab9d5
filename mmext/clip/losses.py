"""Losses on learned prompts, shared by the prompt-learning methods (AttriCLIP, SADA)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmext.registry import MODELS


@MODELS.register_module()
class PromptOrthogonalityLoss(nn.Module):
    """``mean_{i != j} |cos(g(P_i), g(P_j))|`` over N prompt features: keeps learned prompts
    different from one another (AttriCLIP's L_p, SADA's L_m). g is the text encoder on each
    prompt alone (:func:`mmext.clip.encode_contexts_alone`).
    """

    def __init__(self, loss_weight: float = 0.3):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, prompt_feats: Tensor) -> Tensor:
        """prompt_feats (N, D): the text features of the N prompts alone."""
        feats = F.normalize(prompt_feats.float(), dim=-1)
        num = len(feats)
        if num < 2:
            return feats.sum() * 0
        cos = feats @ feats.T
        off = ~torch.eye(num, dtype=torch.bool, device=feats.device)
        return self.loss_weight * cos[off].abs().mean()
