"""Recall@K and mean average recall (mAR) for text-to-image retrieval.

mmpretrain's ``RetrievalRecall`` counts a query as found at K when any of its ground-truth
gallery items is among the K best-scored; ``TextImageRecall`` adds ``mAR``, the mean of the
Recall@K values (the CVPR 2023 foundation-model challenge's retrieval score, over K = 1, 5, 10).
A re-ranker that returns an order rather than scores passes ``ranking_to_scores(order)``.
"""
from __future__ import annotations

import numpy as np
import torch
from mmpretrain.evaluation import RetrievalRecall

from mmext.registry import METRICS


def ranking_to_scores(order: torch.Tensor) -> torch.Tensor:
    """(N,) gallery indices, best first -> (N,) scores that sort the same way (N - rank)."""
    scores = torch.empty(len(order), dtype=torch.float32)
    scores[order] = torch.arange(len(order), 0, -1, dtype=torch.float32)
    return scores


@METRICS.register_module()
class TextImageRecall(RetrievalRecall):
    """``retrieval/Recall@K`` for each K of ``topk`` and ``retrieval/mAR``, their mean.

    Data samples carry ``pred_score`` (N,) over the gallery and ``gt_label``: the indices of the
    query's matching gallery images."""

    def __init__(self, topk=(1, 5, 10), collect_device: str = 'cpu', prefix: str | None = None):
        super().__init__(topk=topk, collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples) -> None:
        """As mmpretrain's, with K capped at the gallery size (a gallery smaller than K has
        every item within the top K)."""
        from mmpretrain.structures import label_to_onehot
        for sample in data_samples:
            score = sample['pred_score'].clone()
            target = label_to_onehot(sample['gt_label'], score.size(-1))
            recalls = self.calculate(score[None], target[None],
                                     topk=tuple(min(k, score.size(-1)) for k in self.topk))
            self.results.append(recalls)

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        metrics['mAR'] = float(np.mean([metrics[f'Recall@{k}'] for k in self.topk]))
        return metrics
