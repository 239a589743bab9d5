"""A3R's CLIPRetriever on a tiny CLIP the tests write: the contrastive loss trains the towers,
predict_all ranks texts and images (with and without the re-ranker) for the recall metric."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from projects.a3r.metrics import TextImageRecall
from projects.a3r.retriever import CLIPRetriever


@pytest.fixture
def retriever(tiny_clip_folder):
    torch.manual_seed(0)
    return CLIPRetriever(clip=dict(model_name=f'local-dir:{tiny_clip_folder}'))


def test_loss_trains_both_towers(retriever):
    images = torch.randn(3, 3, 64, 64)
    samples = [DataSample(metainfo=dict(text=t)) for t in ('a red bag', 'a shoe', 'a coat')]
    loss = retriever(images, samples, mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()
    clip = retriever.clip.clip
    assert clip.visual.conv1.weight.grad.abs().sum() > 0
    assert clip.token_embedding.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='one caption per image'):
        retriever(images[:2], samples, mode='loss')
    with pytest.raises(KeyError, match='PackInputs'):
        retriever(images, [DataSample()] * 3, mode='loss')
    with pytest.raises(RuntimeError, match='RetrievalTestLoop'):
        retriever(images, samples, mode='predict')


def _evaluation_items():
    """3 images; image 0 has captions 0 and 1, image 1 caption 2, image 2 caption 3; caption 0
    also describes image 2."""
    gt_images = [[[0, 2], [0]], [[1]], [[2]]]
    gt_texts = [[0, 1, 3], [2], [0, 3]]
    texts = [['t0', 't1'], ['t2'], ['t3']]
    return [DataSample(metainfo=dict(text=t, gt_image_id=g, gt_text_id=gt))
            for t, g, gt in zip(texts, gt_images, gt_texts)]


def test_predict_all_gives_what_the_recall_metric_reads(retriever):
    torch.manual_seed(1)
    image = F.normalize(torch.randn(3, 8), dim=1)
    text = torch.stack([image[0], image[0] + 0.1, image[1], image[2]])  # caption j ~ its image
    feats = dict(image_feat=image, text_feat=F.normalize(text, dim=1))
    i2t, t2i = retriever.predict_all(feats, _evaluation_items(), num_images=3, num_texts=4)
    assert len(i2t) == 3 and len(t2i) == 4
    assert t2i[0].gt_label.tolist() == [0, 2] and i2t[0].gt_label.tolist() == [0, 1, 3]
    metric = TextImageRecall(topk=(1, ))
    metric.process(None, [s.to_dict() for s in t2i])
    assert metric.compute_metrics(metric.results)['Recall@1'] == pytest.approx(100.0)
    # with the re-ranker the scores are the re-ranked order: a permutation of N..1 per text
    from projects.a3r.rerank import AdaptionReRanker
    retriever.reranker = AdaptionReRanker(num_candidates=3, num_adapt=2, k=None)
    _, reranked = retriever.predict_all(feats, _evaluation_items(), num_images=3, num_texts=4)
    for sample in reranked:
        assert sorted(sample.pred_score.tolist()) == [1.0, 2.0, 3.0]


def test_routed_captions_use_their_route_s_reranker(retriever):
    from projects.a3r.rerank import AdaptionReRanker
    torch.manual_seed(2)
    image = F.normalize(torch.randn(3, 8), dim=1)
    text = F.normalize(torch.randn(4, 8), dim=1)
    retriever.route_rerankers = {'vehicle': AdaptionReRanker(num_candidates=3, num_adapt=2,
                                                             k=None)}
    scores = retriever.rank_images(text, image, routes=['vehicle', None, 'person', 'vehicle'])
    stage1 = text @ image.T
    assert torch.equal(scores[1], stage1[1]) and torch.equal(scores[2], stage1[2])
    for j in (0, 3):  # re-ranked: N - rank
        assert sorted(scores[j].tolist()) == [1.0, 2.0, 3.0]


def test_tensor_mode_embeds_images_flips_and_captions(retriever):
    images = torch.randn(2, 3, 64, 64)
    feats = retriever(images, _evaluation_items()[:2], mode='tensor')
    assert feats['image_feat'].shape == feats['image_feat_flip'].shape == (2, 32)
    assert feats['text_feat'].shape == (3, 32)  # t0, t1, t2
    assert torch.allclose(feats['text_feat'].norm(dim=1), torch.ones(3), atol=1e-5)
