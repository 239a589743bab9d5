"""A3R's adaption re-ranking of a text-to-image retrieval (methods spec, section 5.4).

For one text query ``t`` (D,) and a gallery ``v`` (N, D) with its horizontally flipped images
``v_flip`` (N, D), all L2-normalised:

1. stage 1: ``s_i = max(t.v_i, t.v'_i)``; candidates C = the top ``num_candidates`` (K1);
2. adapted query: on the top ``num_adapt`` (k_a) candidates, ``w_i = minmax(s_i)``,
   ``X = [w_i v_i]`` centred, ``u`` its first principal component with the sign that makes
   ``u.t > 0`` (the released notebook flips it unconditionally); ``q' = norm(u)``, or
   ``norm(t + gamma u)`` when ``gamma`` is set;
3. stage 2: ``s'_i = max(q'.v_i, q'.v'_i)`` over C;
4. k-reciprocal re-ranking on ``C + {q'}``: ``N_k(x)`` the k nearest other members by cosine,
   ``R(i) = {j in N_k(i) : i in N_k(j)}``, and either
   ``r_i = s'_i * |N_k(q') & N_k(i)| / k * |R(i)| / k`` (``variant='quantified'``, the spec's
   form of the notebook's) or ``r_i = (1 - lambda) s'_i + lambda * J(R(q'), R(i))`` with J the
   Jaccard similarity of the reciprocal sets (``variant='jaccard'``, Zhong et al.'s mixture);
5. the ranking: C ordered by ``r``, then the rest of the gallery in stage-1 order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmext.registry import TASK_UTILS


def stage1_scores(query: Tensor, gallery: Tensor, gallery_flipped: Tensor | None = None) -> Tensor:
    """(D,) or (Q, D) queries and (N, D) gallery -> (N,) or (Q, N): the larger cosine of each
    gallery image and its flipped copy."""
    scores = query @ gallery.T
    if gallery_flipped is not None:
        scores = torch.maximum(scores, query @ gallery_flipped.T)
    return scores


def adapted_query(query: Tensor, candidates: Tensor, scores: Tensor, gamma: float | None = None
                  ) -> Tensor:
    """The image-space query of step 2: (D,) text query, (k, D) top candidates and (k,) their
    stage-1 scores -> (D,) unit vector."""
    if candidates.shape[0] < 2:
        raise ValueError('the adapted query needs at least 2 candidates (num_adapt >= 2)')
    spread = scores.max() - scores.min()
    weights = (scores - scores.min()) / spread if spread > 0 else torch.ones_like(scores)
    x = weights[:, None] * candidates
    x = x - x.mean(0, keepdim=True)
    direction = torch.linalg.svd(x.float(), full_matrices=False).Vh[0].to(query)
    if direction @ query < 0:  # the SVD's sign is arbitrary: point it along the text query
        direction = -direction
    if gamma is not None:
        direction = query + gamma * direction
    return F.normalize(direction, dim=-1)


def nearest_neighbours(embeddings: Tensor, k: int) -> Tensor:
    """(M, D) unit vectors -> (M, k) indices of each one's k most similar others (self
    excluded)."""
    if not 1 <= k < len(embeddings):
        raise ValueError(f'k = {k} needs 1 <= k < {len(embeddings)} (the set re-ranked)')
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(-float('inf'))
    return similarity.topk(k, dim=1).indices


def reciprocal_sets(neighbours: Tensor) -> list[set[int]]:
    """``R(i) = {j in N_k(i) : i in N_k(j)}`` for every member, from (M, k) neighbour lists."""
    lists = [set(row.tolist()) for row in neighbours]
    return [{j for j in lists[i] if i in lists[j]} for i in range(len(lists))]


@dataclass
class ReRanking:
    """order: (N,) gallery indices, best first; candidates: (K1,) stage-1 candidates;
    adapted: (D,) the adapted query; stage2: (K1,) and final: (K1,) scores of the candidates."""

    order: Tensor
    candidates: Tensor
    adapted: Tensor
    stage2: Tensor
    final: Tensor


@TASK_UTILS.register_module()
class AdaptionReRanker:
    """A3R's re-ranker (see the module docstring).

    Args:
        num_candidates: K1, stage-1 candidates re-ranked (25 for vehicles, 50 for persons).
        num_adapt: k_a, top candidates whose principal component forms the adapted query (5).
        k: neighbourhood size of the k-reciprocal step (10); ``None`` skips the step (stage 2
            only).
        gamma: ``None``: ``q' = norm(u)`` (the code's); a number: ``q' = norm(t + gamma u)``.
        variant: 'quantified' (the spec's score) or 'jaccard'.
        jaccard_weight: lambda of the 'jaccard' variant (0.3).
    """

    def __init__(self, num_candidates: int = 25, num_adapt: int = 5, k: int | None = 10,
                 gamma: float | None = None, variant: str = 'quantified',
                 jaccard_weight: float = 0.3):
        if variant not in ('quantified', 'jaccard'):
            raise ValueError(f"variant must be 'quantified' or 'jaccard', got {variant!r}")
        if not 2 <= num_adapt <= num_candidates:
            raise ValueError(f'need 2 <= num_adapt ({num_adapt}) <= num_candidates '
                             f'({num_candidates})')
        if k is not None and not 1 <= k < num_candidates + 1:
            raise ValueError(f'k = {k} must be between 1 and num_candidates ({num_candidates})')
        self.num_candidates, self.num_adapt, self.k = num_candidates, num_adapt, k
        self.gamma, self.variant, self.jaccard_weight = gamma, variant, jaccard_weight

    def __call__(self, query: Tensor, gallery: Tensor, gallery_flipped: Tensor | None = None
                 ) -> ReRanking:
        """One query (D,) against the gallery (N, D) (and its flipped copy), all unit vectors."""
        if query.ndim != 1 or gallery.ndim != 2 or query.shape[0] != gallery.shape[1]:
            raise ValueError(f'expected a (D,) query and an (N, D) gallery, got '
                             f'{tuple(query.shape)} and {tuple(gallery.shape)}')
        first = stage1_scores(query, gallery, gallery_flipped)
        stage1_order = first.argsort(descending=True, stable=True)
        top = stage1_order[:min(self.num_candidates, len(gallery))]
        adapted = adapted_query(query, gallery[top[:self.num_adapt]], first[top[:self.num_adapt]],
                                self.gamma)
        flipped = None if gallery_flipped is None else gallery_flipped[top]
        second = stage1_scores(adapted, gallery[top], flipped)
        final = second
        if self.k is not None and len(top) > self.k:
            members = torch.cat([adapted[None], gallery[top]])  # row 0: the adapted query
            neighbours = nearest_neighbours(members, self.k)
            reciprocal = reciprocal_sets(neighbours)
            if self.variant == 'quantified':
                near_query = set(neighbours[0].tolist())
                shared = torch.tensor([len(near_query & set(neighbours[i].tolist()))
                                       for i in range(1, len(members))], dtype=second.dtype)
                size = torch.tensor([len(r) for r in reciprocal[1:]], dtype=second.dtype)
                final = second * (shared / self.k) * (size / self.k)
            else:
                jaccard = torch.tensor([
                    len(reciprocal[0] & r) / max(len(reciprocal[0] | r), 1)
                    for r in reciprocal[1:]], dtype=second.dtype)
                final = (1 - self.jaccard_weight) * second + self.jaccard_weight * jaccard
        reordered = top[final.argsort(descending=True, stable=True)]
        order = torch.cat([reordered, stage1_order[len(top):]])
        return ReRanking(order, top, adapted, second, final)
