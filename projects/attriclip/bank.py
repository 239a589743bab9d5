"""AttriCLIP's attribute word bank and its key matching loss (Wang et al., CVPR 2023); the
prompt orthogonality loss is shared with SADA (``mmext.clip.PromptOrthogonalityLoss``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmext.registry import MODELS

SCORES = ('dot', 'cosine')


@MODELS.register_module()
class AttributeWordBank(BaseModule):
    """N (key, prompt) pairs; an image selects the prompts of its top-k keys.

    Args:
        num_attributes: N (10).
        key_dim: width of the keys, the image embedding's (768 for ViT-L/14).
        prompt_length: M tokens per prompt (12).
        prompt_dim: width of the prompt tokens, the text tower's token embedding (768).
        top_k: k prompts per image (3), concatenated in descending score order.
        score: ``'dot'``, ``z . k_i`` with unnormalised keys (the released code), or
            ``'cosine'``, matching the key loss.
        init_std: keys and prompts start as N(0, init_std^2) (0.02).

    Shapes: ``select`` (B, key_dim) -> (B, k) indices; ``contexts`` (U, k) -> (U, k * M,
    prompt_dim).
    """

    def __init__(self, num_attributes: int = 10, key_dim: int = 768, prompt_length: int = 12,
                 prompt_dim: int = 768, top_k: int = 3, score: str = 'dot',
                 init_std: float = 0.02, init_cfg=None):
        super().__init__(init_cfg)
        if not 1 <= top_k <= num_attributes:
            raise ValueError(f'top_k={top_k} must be between 1 and num_attributes='
                             f'{num_attributes}')
        if score not in SCORES:
            raise ValueError(f'score must be one of {SCORES}, not {score!r}')
        self.top_k, self.score = top_k, score
        self.keys = nn.Parameter(torch.randn(num_attributes, key_dim) * init_std)
        self.prompts = nn.Parameter(torch.randn(num_attributes, prompt_length, prompt_dim)
                                    * init_std)

    @property
    def num_attributes(self) -> int:
        return self.keys.shape[0]

    @property
    def prompt_length(self) -> int:
        return self.prompts.shape[1]

    def scores(self, image_feats: Tensor) -> Tensor:
        """(B, key_dim) image features -> (B, N) matching scores."""
        keys = F.normalize(self.keys, dim=-1) if self.score == 'cosine' else self.keys
        if image_feats.shape[-1] != keys.shape[-1]:
            raise ValueError(f'image features of width {image_feats.shape[-1]} for keys of '
                             f'width {keys.shape[-1]}: set key_dim to the CLIP embedding width')
        return image_feats.float() @ keys.float().T

    def select(self, image_feats: Tensor) -> Tensor:
        """(B, key_dim) -> (B, k) indices of the top-k keys, best first (no gradient)."""
        with torch.no_grad():
            return self.scores(image_feats).topk(self.top_k, dim=-1, sorted=True).indices

    def contexts(self, selections: Tensor) -> Tensor:
        """(U, k) index tuples -> (U, k * M, prompt_dim): their prompts one after another."""
        return self.prompts[selections].flatten(1, 2)


@MODELS.register_module()
class KeyMatchingLoss(nn.Module):
    """``L_k = 1 - mean_{i in I(x)} cos(f(x), k_i)``: pulls the selected keys to the image.

    Top-k selection is not differentiable; this is the only gradient the keys get. The image
    features are detached, so nothing but the keys moves.
    """

    def __init__(self, loss_weight: float = 0.7):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, image_feats: Tensor, keys: Tensor, selections: Tensor) -> Tensor:
        """image_feats (B, D), keys (N, D), selections (B, k)."""
        image = F.normalize(image_feats.detach().float(), dim=-1)
        chosen = F.normalize(keys[selections].float(), dim=-1)  # (B, k, D)
        cos = torch.einsum('bd,bkd->bk', image, chosen)
        return self.loss_weight * (1 - cos.mean())
