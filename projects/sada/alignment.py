"""SADA's visual prototypes and their distribution alignment with the prompt features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmext.registry import MODELS


@MODELS.register_module()
class PrototypeBank(BaseModule):
    """P learnable visual prototypes per class, set from training-image features first.

    Args:
        num_classes: C.
        num_prototypes: P per class (8 x the shot count).
        dim: D, the image embedding's width.

    ``statistics()`` gives the per-class mean (C, D) and standard deviation (C, D) of the
    normalised prototypes.
    """

    def __init__(self, num_classes: int, num_prototypes: int, dim: int, init_cfg=None):
        super().__init__(init_cfg)
        self.prototypes = nn.Parameter(torch.zeros(num_classes, num_prototypes, dim))
        self.register_buffer('initialised', torch.tensor(False))

    def set_from_features(self, feats: Tensor, labels: Tensor) -> None:
        """feats (N, R, D) of N images over R views; each class takes its first P features
        (cycling when it has fewer)."""
        num_classes, num, dim = self.prototypes.shape
        feats = F.normalize(feats.float(), dim=-1)
        with torch.no_grad():
            for c in range(num_classes):
                pool = feats[labels == c].reshape(-1, dim)
                if len(pool) == 0:
                    raise ValueError(f'class {c} has no training image to set its prototypes')
                take = torch.arange(num) % len(pool)
                self.prototypes[c] = pool[take].to(self.prototypes)
            self.initialised.fill_(True)

    def statistics(self) -> tuple[Tensor, Tensor]:
        protos = F.normalize(self.prototypes.float(), dim=-1)
        return protos.mean(1), protos.std(1, unbiased=False)


@MODELS.register_module()
class GaussianEMDLoss(nn.Module):
    """Earth mover's distance between two diagonal Gaussians per class, in closed form.

    ``(1 / C) sum_c ||mu_a - mu_b||^2 + ||sigma_a - sigma_b||^2``: the squared 2-Wasserstein
    distance (``squared=True``, the default); ``squared=False`` takes the unsquared norms, as the
    released code does.

    Shapes: four (C, D) tensors -> a scalar.
    """

    def __init__(self, squared: bool = True, loss_weight: float = 1.0):
        super().__init__()
        self.squared, self.loss_weight = squared, loss_weight

    def forward(self, mean_a: Tensor, std_a: Tensor, mean_b: Tensor, std_b: Tensor) -> Tensor:
        if self.squared:
            per_class = ((mean_a - mean_b) ** 2).sum(-1) + ((std_a - std_b) ** 2).sum(-1)
        else:
            per_class = (mean_a - mean_b).norm(dim=-1) + (std_a - std_b).norm(dim=-1)
        return self.loss_weight * per_class.mean()


def calibrate(feats: Tensor, prototype_means: Tensor, weight: float,
              labels: Tensor | None = None) -> Tensor:
    """SADA's feature calibration: ``z' = (1 - w) z + w m``, renormalised.

    m is the label's prototype mean in training (``labels`` given); at test the mixture
    ``sum_c a_c mu_c`` with ``a = softmax_c(u_c)``, ``u_c`` the inverse L2 distances to the
    class means normalised to sum to one.

    Shapes: feats (B, D) normalised, prototype_means (C, D) -> (B, D).
    """
    if weight == 0:
        return feats
    if labels is not None:
        target = prototype_means[labels]
    else:
        inverse = 1.0 / torch.cdist(feats, prototype_means).clamp_min(1e-6)
        attention = (inverse / inverse.sum(-1, keepdim=True)).softmax(-1)
        target = attention @ prototype_means
    return F.normalize((1 - weight) * feats + weight * target, dim=-1)
