"""Learnable prompt contexts (CoOp), used by MVP-SEG."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .text import TextTower, build_prompt_sequences


class PromptLearner(nn.Module):
    """P learnable contexts of M tokens each, shared by all classes.

    ``forward(tower, class_names)`` encodes ``[SOS] ctx_p <name_c> . [EOS]`` for every prompt p
    and class c with the (frozen) text tower; gradients reach only the contexts.

    Args:
        width: D_txt, the text tower's token-embedding width (``TextTower.width``).
        num_context: M, context tokens per prompt (CoOp: 16).
        num_prompts: P, prompts ("views") per class.
        class_position: ``'end'``, ``'middle'`` or ``'front'`` (where the name goes).
        init_std: contexts start as N(0, init_std^2) (CoOp: 0.02).
        init_embeddings: (M, D_txt) token embeddings to start every context from (CoOp's
            word initialisation, e.g. of "a photo of a"); N(0, init_std^2) noise is added so
            that several prompts do not stay identical. M must equal ``num_context``.

    Returns of forward: (C, P, D) text features, not normalised.
    """

    def __init__(self, width: int, num_context: int = 16, num_prompts: int = 1,
                 class_position: str = 'end', init_std: float = 0.02,
                 init_embeddings: Tensor | None = None):
        super().__init__()
        if num_context < 1 or num_prompts < 1:
            raise ValueError(f'need at least one context token and one prompt, got '
                             f'num_context={num_context}, num_prompts={num_prompts}')
        if class_position not in ('end', 'middle', 'front'):
            raise ValueError(f"class_position must be 'end', 'middle' or 'front', "
                             f'not {class_position!r}')
        self.class_position = class_position
        context = torch.randn(num_prompts, num_context, width) * init_std
        if init_embeddings is not None:
            if tuple(init_embeddings.shape) != (num_context, width):
                raise ValueError(f'init_embeddings must be ({num_context}, {width}), got '
                                 f'{tuple(init_embeddings.shape)}')
            context = context + init_embeddings.detach().float()[None]
        self.context = nn.Parameter(context)

    @property
    def num_prompts(self) -> int:
        return self.context.shape[0]

    def forward(self, tower: TextTower, class_names: Sequence[str]) -> Tensor:
        embeds, lengths = build_prompt_sequences(tower, self.context, class_names,
                                                 self.class_position)
        feats = tower.encode_embeddings(embeds, lengths)  # (P * C, D), prompt-major
        return feats.reshape(self.num_prompts, len(class_names), -1).transpose(0, 1)
