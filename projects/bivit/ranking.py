"""Ranking-aware distillation of attention and a ranking-agreement score.

The paper names the loss but not its form; the pair sampling is our proposal
(each of the teacher's top-K keys of a query against S keys drawn from the rest), and the
default penalty is ours: ``relu(ratio * (t_j - t_k) - (u_j - u_k))`` for teacher logits t and
student logits u with ``t_j > t_k``. It is zero when the student keeps the teacher's order with
at least ``ratio`` of its gaps, and positive for a swapped or tied pair (binarized q and k give
many ties). ``penalty='logistic'`` is RankNet's form ``softplus(-(u_j - u_k) / T)``.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from mmext.registry import MODELS

from .binarized_vit import attention_cores


@contextmanager
def record_attention_logits(model: nn.Module):
    """Within the block, ``logits[owner name]`` holds the pre-softmax attention logits
    (B, H, L, S) of every quantized attention of ``model`` (its ``logits`` hook point)."""
    logits, handles = {}, []
    for name, (_, core) in attention_cores(model).items():
        def hook(module, args, output, name=name):
            logits[name] = output
        handles.append(core.logits.register_forward_hook(hook))
    try:
        yield logits
    finally:
        for handle in handles:
            handle.remove()


def num_extra_tokens(model: nn.Module) -> int:
    """How many tokens precede the patch tokens in ``model``'s backbone (or ``model`` itself, if
    it is a backbone): 1 for a ViT with a class token, 2 with a distillation token as well,
    0 for Swin (no such tokens)."""
    backbone = getattr(model, 'backbone', model)
    return int(getattr(backbone, 'num_extra_tokens', 0))


def drop_tokens(logits: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Attention logits (B, H, L, S) without tokens ``start .. stop - 1``, as queries and as
    keys: (B, H, L - n, S - n) for n = stop - start."""
    if stop <= start:
        return logits
    def kept(n: int) -> torch.Tensor:
        return torch.tensor([i for i in range(n) if not start <= i < stop], device=logits.device)

    return logits.index_select(-2, kept(logits.shape[-2])).index_select(-1, kept(logits.shape[-1]))


def paired_attention_logits(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                            student_extra: int = 0, teacher_extra: int = 0
                            ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{layer: (student logits, teacher logits)} over the tokens both models have.

    ``student`` / ``teacher``: the recorded logits (B, H, L, S) by attention layer (the same
    layers in both). A student with more extra tokens than the teacher (a distillation token,
    index 1, beside the class token, index 0, of a plain teacher) has the surplus ones
    (indices ``teacher_extra .. student_extra - 1``) dropped as queries and keys, so that
    both sides rank the same keys for the same queries."""
    if set(student) != set(teacher) or not student:
        raise ValueError('student and teacher have different attention layers: '
                         f'{sorted(set(student) ^ set(teacher))}; the ranking loss needs the '
                         "student's architecture in the teacher")
    if student_extra < teacher_extra:
        raise ValueError(f'the teacher has {teacher_extra} extra tokens and the student only '
                         f'{student_extra}: the student must have every token of the teacher')
    return {name: (drop_tokens(student[name], teacher_extra, student_extra), teacher[name])
            for name in student}


def sample_ranked_pairs(teacher: torch.Tensor, top_k: int, num_samples: int,
                        generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Key pairs per query: the teacher's top-K keys (..., K) and S keys drawn uniformly from the
    other ones (..., S), without replacement. teacher: logits (..., N) with N > K."""
    n = teacher.shape[-1]
    top_k = min(top_k, n - 1)
    num_samples = min(num_samples, n - top_k)
    top = teacher.topk(top_k, dim=-1).indices
    noise = torch.rand(teacher.shape, generator=generator, device=teacher.device)
    noise.scatter_(-1, top, -1.0)  # the top keys are never drawn
    rest = noise.topk(num_samples, dim=-1).indices
    return top, rest


@MODELS.register_module()
class RankingAwareAttentionLoss(nn.Module):
    """Pairwise ranking loss of student attention logits against the teacher's.

    ``forward(student, teacher)``: logits (B, H, L, N) each -> scalar, the mean over queries
    and sampled pairs with ``t_j > t_k`` (teacher side detached).

    Args:
        top_k: K, the teacher's top keys of each query.
        num_samples: S, keys drawn from the rest for each query.
        penalty: 'margin' (default; zero when the order is kept with ``ratio`` of the gaps) or
            'logistic' (RankNet, softplus with temperature ``temperature``).
        ratio: the fraction of the teacher's gap the student must keep ('margin').
        temperature: T of 'logistic'.
        loss_weight: lambda_rank.
    """

    PENALTIES = ('margin', 'logistic')

    def __init__(self, top_k: int = 8, num_samples: int = 32, penalty: str = 'margin',
                 ratio: float = 0.5, temperature: float = 1.0, loss_weight: float = 1.0):
        super().__init__()
        if penalty not in self.PENALTIES:
            raise ValueError(f'RankingAwareAttentionLoss penalty must be one of {self.PENALTIES}'
                             f', got {penalty!r}')
        if top_k < 1 or num_samples < 1:
            raise ValueError(f'top_k and num_samples must be >= 1, got {top_k}, {num_samples}')
        self.top_k, self.num_samples, self.penalty = top_k, num_samples, penalty
        self.ratio, self.temperature, self.loss_weight = ratio, temperature, loss_weight

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape != teacher.shape:
            raise ValueError(f'student attention logits {tuple(student.shape)} and teacher '
                             f'{tuple(teacher.shape)} differ: the teacher needs the same '
                             'architecture (depth, heads, tokens)')
        teacher = teacher.detach()
        top, rest = sample_ranked_pairs(teacher, self.top_k, self.num_samples)
        t_gap = teacher.gather(-1, top)[..., :, None] - teacher.gather(-1, rest)[..., None, :]
        u_gap = student.gather(-1, top)[..., :, None] - student.gather(-1, rest)[..., None, :]
        ordered = (t_gap > 0).to(student.dtype)  # (..., K, S)
        if self.penalty == 'margin':
            losses = F.relu(self.ratio * t_gap - u_gap)
        else:
            losses = F.softplus(-u_gap / self.temperature)
        return self.loss_weight * (losses * ordered).sum() / ordered.sum().clamp_min(1)


def kendall_tau(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Kendall's tau-a between student and teacher scores over the last dim (N keys), averaged
    over all leading dims: (concordant - discordant) / (N (N - 1) / 2) per query. Ties count 0.
    Memory: the (..., N, N) sign tables."""
    n = student.shape[-1]
    s = torch.sign(student[..., :, None] - student[..., None, :])
    t = torch.sign(teacher[..., :, None] - teacher[..., None, :])
    return (s * t).sum(dim=(-1, -2)).div(n * (n - 1)).mean()
