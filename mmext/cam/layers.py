"""Finding target layers by name, and reshaping token maps for CAM methods."""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn


def resolve_target_layers(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """``model.get_submodule(name)`` for each name, with close names in the error."""
    known = [n for n, _ in model.named_modules() if n]
    layers = []
    for name in names:
        try:
            layers.append(model.get_submodule(name))
        except AttributeError:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
            raise ValueError(f'target layer {name!r} does not exist in {type(model).__name__}; '
                             f'close names: {close or known[-5:]} (print(model) lists them '
                             'all)') from None
    return layers


def token_reshape_transform(num_prefix_tokens: int = 1,
                            grid: tuple[int, int] | None = None) -> Callable[[Tensor], Tensor]:
    """A ``reshape_transform`` for token models: (B, N, D) -> (B, D, h, w).

    The first ``num_prefix_tokens`` tokens are dropped (ViT: the class token, 1; DeiT with a
    distillation token: 2; Swin stage outputs and MaskCLIP-style patch tokens: 0); the rest are
    a square grid unless ``grid`` names it. 4-d feature maps pass through.
    """
    def reshape(tokens: Tensor) -> Tensor:
        if isinstance(tokens, (tuple, list)):
            tokens = tokens[0]
        if tokens.ndim == 4:
            return tokens
        if tokens.ndim != 3:
            raise ValueError(f'expected (B, N, D) tokens, got {tuple(tokens.shape)}')
        patches = tokens[:, num_prefix_tokens:]
        h, w = grid or (math.isqrt(patches.shape[1]), ) * 2
        if h * w != patches.shape[1]:
            raise ValueError(f'{patches.shape[1]} tokens after dropping {num_prefix_tokens} '
                             f'prefix token(s) do not form a {h} x {w} grid; set '
                             'num_prefix_tokens or grid')
        return patches.reshape(patches.shape[0], h, w, -1).permute(0, 3, 1, 2)
    return reshape
