"""A3R's adaption re-ranking on hand-made galleries whose answer is known."""
import pytest
import torch
import torch.nn.functional as F

from projects.a3r.rerank import (
    AdaptionReRanker,
    adapted_query,
    nearest_neighbours,
    reciprocal_sets,
    stage1_scores,
)


def _gallery():
    """6 true images tight around a; a decoy between a and e that the text matches best;
    20 random images. The text query leans towards e."""
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 16)).Q.T
    a, e = basis[0], basis[1]
    cluster = F.normalize(a + 0.1 * torch.randn(6, 16), dim=1)
    decoy = F.normalize(a + 0.8 * e, dim=0)[None]
    gallery = torch.cat([decoy, cluster, F.normalize(torch.randn(20, 16), dim=1)])
    return F.normalize(a + 1.2 * e, dim=0), gallery, a


def test_stage1_takes_the_better_of_image_and_flipped_image():
    query = torch.tensor([1.0, 0.0])
    gallery = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    flipped = torch.tensor([[0.8, 0.6], [1.0, 0.0]])
    assert torch.allclose(stage1_scores(query, gallery, flipped), torch.tensor([0.8, 1.0]))
    assert torch.allclose(stage1_scores(query, gallery), torch.tensor([0.6, 0.0]))


def test_adapted_query_is_the_principal_direction_signed_towards_the_text():
    torch.manual_seed(1)
    a = F.normalize(torch.randn(16), dim=0)
    candidates = F.normalize(a + 0.05 * torch.randn(5, 16), dim=1)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    for text in (F.normalize(a + 0.5 * torch.randn(16), dim=0), -a):
        q = adapted_query(text, candidates, scores)
        assert q @ text > 0  # the sign rule
        assert abs(float(q @ a)) > 0.97  # the weighted candidates vary along a
        assert q.norm() == pytest.approx(1.0)
    mixed = adapted_query(a, candidates, scores, gamma=1.0)
    assert torch.allclose(mixed, F.normalize(a + adapted_query(a, candidates, scores), dim=0))


def test_reciprocal_sets_against_brute_force():
    torch.manual_seed(2)
    x = F.normalize(torch.randn(12, 8), dim=1)
    k = 4
    sim = (x @ x.T).tolist()
    brute = [sorted((j for j in range(12) if j != i), key=lambda j: -sim[i][j])[:k]
             for i in range(12)]
    found = nearest_neighbours(x, k)
    assert [sorted(r) for r in found.tolist()] == [sorted(r) for r in brute]
    expected = [{j for j in brute[i] if i in brute[j]} for i in range(12)]
    assert reciprocal_sets(found) == expected


def test_k_reciprocal_lifts_the_mutually_near_images_over_a_decoy():
    query, gallery, _ = _gallery()
    first = stage1_scores(query, gallery).argsort(descending=True)
    assert int(first[0]) == 0  # the decoy wins the text match
    result = AdaptionReRanker(num_candidates=10, num_adapt=5, k=3)(query, gallery)
    assert set(result.order[:3].tolist()) <= set(range(1, 7))  # true images first
    assert sorted(result.order.tolist()) == list(range(len(gallery)))  # a permutation
    assert torch.equal(result.order[10:], first[10:])  # the rest in stage-1 order
    stage2_only = AdaptionReRanker(num_candidates=10, num_adapt=5, k=None)(query, gallery)
    assert torch.equal(stage2_only.final, stage2_only.stage2)
    jaccard = AdaptionReRanker(num_candidates=10, num_adapt=5, k=3, variant='jaccard')(
        query, gallery)
    assert sorted(jaccard.order.tolist()) == list(range(len(gallery)))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="variant must be 'quantified' or 'jaccard'"):
        AdaptionReRanker(variant='best')
    with pytest.raises(ValueError, match='num_adapt'):
        AdaptionReRanker(num_candidates=4, num_adapt=5)
    with pytest.raises(ValueError, match=r'expected a \(D,\) query'):
        AdaptionReRanker()(torch.ones(2, 4), torch.ones(5, 4))
