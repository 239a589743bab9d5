"""The reconstruction term of DCP-NAS's released ImageNet retraining.

In the released code, each 1-bit convolution's backward adds a reconstruction gradient: weight
decay towards the binarized weight, ``1e-4 * (w - beta sign(w))``. This is the gradient of
``mu * L_R`` with ``L_R = sum ||w - beta sign(w)||^2`` and ``mu = 5e-5``. Here the term is an
ordinary loss, so its value appears in the log and in the total.
"""
from __future__ import annotations

import torch

from mmext.distill import DistilledClassifier
from mmext.quant import QConv2d, WeightBinarizer
from mmext.registry import MODELS

from .dcpnas import reconstruction_loss


def _has_learnable_binary_weights(module: torch.nn.Module) -> bool:
    return any(isinstance(m, QConv2d) and isinstance(m.w_quantizer, WeightBinarizer)
               and m.w_quantizer.learnable_scale for m in module.modules())


@MODELS.register_module()
class DistilledClassifierWithReconstruction(DistilledClassifier):
    """:class:`mmext.DistilledClassifier` whose training loss adds ``loss_rec = mu * L_R``.
    ``L_R = sum ||w - beta sign(w)||^2`` runs over the student's 1-bit convolutions, with
    their learnable per-channel scales beta.

    Args:
        reconstruction_weight: mu. 0 (default) leaves the loss as ``DistilledClassifier``'s.
            A positive mu needs 1-bit weights in the student (``binary=True``). Step 1 of the
            two-step retraining has real weights and so has nothing to reconstruct.
        Others: as :class:`mmext.DistilledClassifier`.
    """

    def __init__(self, *args, reconstruction_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if reconstruction_weight < 0:
            raise ValueError(f'reconstruction_weight must be >= 0, got {reconstruction_weight}')
        if reconstruction_weight and not _has_learnable_binary_weights(self.student):
            raise ValueError('reconstruction_weight > 0 needs 1-bit weights with a learnable '
                             'scale in the student (DartsNetwork binary=True); this student has '
                             'none (binary=False or "activations"?). Set it to 0')
        self.reconstruction_weight = reconstruction_weight

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        """``DistilledClassifier.loss`` plus ``loss_rec`` (after the forward, so that the
        scales have been initialised from the weights)."""
        losses = super().loss(inputs, data_samples)
        if self.reconstruction_weight:
            losses['loss_rec'] = self.reconstruction_weight * reconstruction_loss(self.student)
        return losses
