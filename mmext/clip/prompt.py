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


POSITIONS = ('front', 'middle', 'end')


class ProDAPromptLearner(nn.Module):
    """ProDA's prompt distribution (Lu et al., 2022): K learnable prompts whose class features
    form a distribution per class.

    The class name goes at the front of the first quarter of the prompts, in the middle of the
    second quarter and at the end of the rest. Training samples ``prompts_per_step`` of them per
    step; evaluation uses all K.

    Args:
        width: D_txt.
        num_prompts: K (32).
        num_context: M context tokens per prompt (16).
        prompts_per_step: prompts sampled per training step (4).
        init_std: contexts start as N(0, init_std^2).

    ``forward(tower, class_names, indices)`` returns (C, k, D) text features, not normalised,
    for the prompts ``indices`` (all K when ``None``).
    """

    def __init__(self, width: int, num_prompts: int = 32, num_context: int = 16,
                 prompts_per_step: int = 4, init_std: float = 0.02):
        super().__init__()
        if not 1 <= prompts_per_step <= num_prompts:
            raise ValueError(f'prompts_per_step={prompts_per_step} must be between 1 and '
                             f'num_prompts={num_prompts}')
        self.context = nn.Parameter(torch.randn(num_prompts, num_context, width) * init_std)
        self.prompts_per_step = prompts_per_step
        quarter = num_prompts // 4
        self.positions = (['front'] * quarter + ['middle'] * quarter
                          + ['end'] * (num_prompts - 2 * quarter))

    @property
    def num_prompts(self) -> int:
        return self.context.shape[0]

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """``prompts_per_step`` distinct prompt indices, drawn at random."""
        order = torch.randperm(self.num_prompts, generator=generator)
        return order[:self.prompts_per_step].sort().values

    def forward(self, tower: TextTower, class_names: Sequence[str],
                indices: Tensor | None = None) -> Tensor:
        indices = torch.arange(self.num_prompts) if indices is None else indices.cpu()
        feats = [None] * len(indices)
        for position in POSITIONS:
            chosen = [i for i, k in enumerate(indices.tolist()) if self.positions[k] == position]
            if not chosen:
                continue
            context = self.context[indices[chosen].to(self.context.device)]
            embeds, lengths = build_prompt_sequences(tower, context, class_names, position)
            out = tower.encode_embeddings(embeds, lengths)  # (p * C, D), prompt-major
            out = out.reshape(len(chosen), len(class_names), -1)
            for slot, i in enumerate(chosen):
                feats[i] = out[slot]
        return torch.stack(feats, dim=1)  # (C, k, D)
