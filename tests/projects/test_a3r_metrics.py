"""Recall@K and mAR of text-to-image retrieval against a hand computation."""
import pytest
import torch
from mmpretrain.structures import DataSample

from projects.a3r.metrics import TextImageRecall, ranking_to_scores


def test_recall_and_mar_by_hand():
    # 4 queries over a gallery of 6; the ranks of their first true image: 1, 3, 6, 2
    orders = [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [1, 2, 3, 4, 5, 0], [2, 1, 0, 3, 4, 5]]
    truths = [[0], [3, 0], [0], [1]]
    metric = TextImageRecall(topk=(1, 2, 5))
    samples = [DataSample().set_pred_score(ranking_to_scores(torch.tensor(o))).set_gt_label(t)
               .to_dict()
               for o, t in zip(orders, truths)]
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    # found at 1: q0; at 2: q0, q3; at 5: q0, q1, q3 (q2 only at rank 6)
    assert out['Recall@1'] == pytest.approx(25.0)
    assert out['Recall@2'] == pytest.approx(50.0)
    assert out['Recall@5'] == pytest.approx(75.0)
    assert out['mAR'] == pytest.approx(50.0)


def test_k_beyond_the_gallery_counts_every_item():
    metric = TextImageRecall(topk=(1, 10))
    sample = DataSample().set_pred_score(torch.tensor([0.9, 0.1, 0.5])).set_gt_label([1])
    metric.process(None, [sample.to_dict()])
    out = metric.compute_metrics(metric.results)
    assert out['Recall@1'] == 0.0 and out['Recall@10'] == pytest.approx(100.0)


def test_ranking_to_scores_sorts_like_the_ranking():
    order = torch.tensor([3, 0, 2, 1])
    assert torch.equal(ranking_to_scores(order).argsort(descending=True), order)
