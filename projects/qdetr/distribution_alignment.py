"""Q-DETR's distribution alignment (DA, the inner level): a learnable standardisation of the
decoder queries before their quantizer.

``q* = gamma * (q - mu) / sqrt(var + eps) + beta`` over the head dimension of each query token,
gamma and beta (d,) shared across heads, initialised to 1 and 0 (the paper's initialisation, ``init='paper'``)
or, with ``init='fit'`` [our choice], fitted on the first batch so that q* is the closest
per-channel affine map of the standardised q to q itself: QAT from a float detector then starts
from (nearly) the queries it was trained with, instead of standardised ones. It sits in
the ``q_transform`` slot of the decoder attentions' :class:`mmext.quant.attention.QuantizedSDPA`,
after the query projection and before the q quantizer; keys and values are untouched.
"""
from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import nn

from mmext.quant.attention import QuantizedSDPA
from mmext.quant.quantizers import _all_reduce_mean
from mmext.registry import MODELS


@MODELS.register_module()
class QueryDistributionAlignment(nn.Module):
    """Standardise q (B, H, N, d) over d with a learnable affine map (gamma, beta of size d).

    Args:
        head_dim: d, the per-head width of q.
        init: ``'paper'``: gamma = 1, beta = 0. ``'fit'``: on the first forward, the least-squares
            fit of q on z = standardised q, per channel over every token and head of the batch
            (averaged over processes): gamma = cov(z, q) / var(z), beta = E[q] - gamma E[z].
            The ``initialized`` buffer is saved, so a loaded model is never refitted.
        eps: added to the variance.
    """

    INITS = ('paper', 'fit')

    def __init__(self, head_dim: int, init: str = 'paper', eps: float = 1e-5):
        super().__init__()
        if init not in self.INITS:
            raise ValueError(f'QueryDistributionAlignment init must be one of {self.INITS}, '
                             f'got {init!r}')
        self.head_dim, self.init, self.eps = head_dim, init, eps
        self.gamma = nn.Parameter(torch.ones(head_dim))
        self.beta = nn.Parameter(torch.zeros(head_dim))
        self.register_buffer('initialized', torch.tensor(init == 'paper'))
        self._fitted = False

    def standardise(self, q: torch.Tensor) -> torch.Tensor:
        mean = q.mean(dim=-1, keepdim=True)
        var = q.var(dim=-1, keepdim=True, unbiased=False)
        return (q - mean) / torch.sqrt(var + self.eps)

    @torch.no_grad()
    def fit(self, q: torch.Tensor, z: torch.Tensor) -> None:
        """Set gamma, beta to the per-channel least-squares fit of q on z (both (..., d))."""
        q, z = q.reshape(-1, self.head_dim).float(), z.reshape(-1, self.head_dim).float()
        moments = _all_reduce_mean(torch.stack([z.mean(0), q.mean(0), (z * q).mean(0),
                                                (z * z).mean(0)]))
        mean_z, mean_q, mean_zq, mean_zz = moments
        gamma = (mean_zq - mean_z * mean_q) / (mean_zz - mean_z ** 2).clamp_min(self.eps)
        self.gamma.copy_(gamma)
        self.beta.copy_(mean_q - gamma * mean_z)
        self.initialized.fill_(True)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        if q.shape[-1] != self.head_dim:
            raise ValueError(f'QueryDistributionAlignment for head dim {self.head_dim} got q of '
                             f'shape {tuple(q.shape)}')
        z = self.standardise(q)
        if not self._fitted:  # the buffer is read (a device sync) only until it is set
            if not self.initialized:
                self.fit(q, z)
            self._fitted = True
        return self.gamma * z + self.beta

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint with gamma and beta but no flag (saved before 'fit' existed) is trained
        if prefix + 'gamma' in state_dict and prefix + 'initialized' not in state_dict:
            state_dict[prefix + 'initialized'] = torch.tensor(True)
        self._fitted = False
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f'head_dim={self.head_dim}, init={self.init!r}'


def attention_owners(model: nn.Module, pattern: str) -> dict[str, QuantizedSDPA]:
    """{owner name: its QuantizedSDPA} for attention modules whose name matches pattern."""
    return {name: module.attention for name, module in model.named_modules()
            if isinstance(getattr(module, 'attention', None), QuantizedSDPA)
            and fnmatchcase(name, pattern)}


def query_head_dim(attention_owner: nn.Module) -> int:
    """Per-head width of q in an attention module holding a QuantizedSDPA: embed / heads, twice
    that in Conditional DETR's cross-attention (content and sine position concatenated)."""
    if hasattr(attention_owner, 'head_dim'):  # QMultiheadAttention
        return attention_owner.head_dim
    width = attention_owner.embed_dims // attention_owner.num_heads
    return 2 * width if getattr(attention_owner, 'cross_attn', False) else width


def add_distribution_alignment(model: nn.Module, pattern: str = 'decoder.layers.*',
                               init: str = 'paper') -> list[str]:
    """Put a QueryDistributionAlignment (``init``: 'paper' or 'fit') in the q slot of every
    quantized attention whose owner's name matches ``pattern``; returns the owners' names.
    Raises if none matches."""
    added = []
    for name, sdpa in attention_owners(model, pattern).items():
        module = model.get_submodule(name)
        sdpa.q_transform = QueryDistributionAlignment(query_head_dim(module), init).to(
            next(module.parameters()).device)
        added.append(name)
    if not added:
        raise ValueError(f'distribution alignment pattern {pattern!r} matches no quantized '
                         'attention; quantize the decoder attention (attn_bits < 32) first')
    return added
