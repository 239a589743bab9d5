"""What a CAM explains: a class logit or probability (pytorch-grad-cam's targets) or the
similarity of a CLIP image embedding to a text."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pytorch_grad_cam.utils.model_targets import (
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
)
from torch import Tensor, nn

ClassLogitTarget = ClassifierOutputTarget
ClassProbabilityTarget = ClassifierOutputSoftmaxTarget


class CLIPImageModel(nn.Module):
    """A CLIP's image tower as a CAM model: (B, 3, H, W) normalised images -> (B, D) image
    embeddings (not normalised). Its layers are ``visual.*`` (``OpenCLIPModel.clip.visual``)."""

    def __init__(self, clip):
        super().__init__()
        self.visual = clip.clip.visual
        self.clip = [clip]  # a reference, not a sub-module: hooks go on ``visual`` only

    def forward(self, images: Tensor) -> Tensor:
        return self.visual(images)


class CLIPTextTarget:
    """``logit_scale * cos(image embedding, text embedding)`` for one text.

    Args:
        text_embedding: (D, ) the text's embedding (normalised here).
        logit_scale: CLIP's temperature (100 for the OpenAI models).
    """

    def __init__(self, text_embedding: Tensor, logit_scale: float = 100.0):
        if text_embedding.ndim != 1:
            raise ValueError(f'one text embedding (D, ) per target, got '
                             f'{tuple(text_embedding.shape)}')
        self.text = F.normalize(text_embedding.detach().float(), dim=-1)
        self.logit_scale = float(logit_scale)

    def __call__(self, image_embedding: Tensor) -> Tensor:
        if image_embedding.shape[-1] != self.text.shape[0]:
            raise ValueError(f'the model gives {image_embedding.shape[-1]}-d outputs, the text '
                             f'embedding is {self.text.shape[0]}-d: a text target needs a CLIP '
                             'image model (mmext.cam.CLIPImageModel)')
        image = F.normalize(image_embedding.float(), dim=-1)
        return self.logit_scale * (image * self.text.to(image.device)).sum(-1)

    @classmethod
    def from_prompts(cls, clip, prompts: Sequence[str]) -> list[CLIPTextTarget]:
        """One target per prompt, embedded by ``clip`` (an ``mmext.OpenCLIPModel``)."""
        if not hasattr(clip, 'encode_text'):
            raise TypeError(f'a text target needs a CLIP model (mmext.OpenCLIPModel) to embed '
                            f'the text, got {type(clip).__name__}')
        with torch.no_grad():
            texts = clip.encode_text(list(prompts), normalize=True)
        scale = float(clip.logit_scale)
        return [cls(t, scale) for t in texts]
