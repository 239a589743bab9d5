"""MVP-SEG pieces: OCLoss, GPR loss, the head's class handling, and the hIoU metric."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmext.clip import OpenCLIPModel
from mmext.evaluation import OpenVocabIoUMetric, harmonic_iou
from projects.mvpseg import GlobalPromptLoss, MVPSegHead, OrthogonalConstraintLoss
from tests.conftest import TINY_CLIP_CFG

NAMES = ['background', 'bag', 'coat', 'sneaker']
SEEN = ['background', 'bag', 'coat']


def test_ocloss_is_zero_for_orthogonal_views_and_positive_otherwise():
    loss = OrthogonalConstraintLoss(loss_weight=1.0)
    orthogonal = torch.eye(4)[:3].expand(2, 3, 4)  # 2 classes, 3 orthogonal views
    assert loss(orthogonal).item() == pytest.approx(0.0, abs=1e-7)
    same = torch.ones(2, 3, 4)
    assert loss(same).item() == pytest.approx(1.0)
    partly = orthogonal.clone()
    partly[:, 1] = partly[:, 0] + partly[:, 1]  # cos 1/sqrt(2) between views 0 and 1
    assert loss(partly).item() == pytest.approx(2 * 0.5 / 6)  # 2 ordered pairs of 6
    assert loss(torch.randn(2, 1, 4)).item() == 0.0  # one view: nothing to push apart
    with pytest.raises(ValueError, match='classes, views, dim'):
        loss(torch.randn(3, 4))


def test_global_prompt_loss_targets_the_present_classes():
    loss = GlobalPromptLoss()
    present = torch.tensor([[1., 0., 1.], [0., 0., 0.]])  # the second image is skipped
    right = torch.tensor([[10., -10., 10.], [0., 0., 0.]])
    wrong = torch.tensor([[-10., 10., -10.], [0., 0., 0.]])
    assert loss(right, present) < 0.7 < loss(wrong, present)  # log 2 is the floor here


def _sample(label, pred=None):
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.as_tensor(label)[None])
    if pred is not None:
        sample.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    return sample


def test_hiou_on_hand_made_predictions():
    metric = OpenVocabIoUMetric(seen_classes=['background', 'bag'], unseen_classes=['coat'])
    metric.dataset_meta = dict(classes=('background', 'bag', 'coat'))
    label = torch.tensor([[0, 0, 1, 1], [0, 0, 2, 2]])
    pred = torch.tensor([[0, 0, 1, 2], [0, 1, 2, 2]])
    # IoU: background 3/4, bag 1/3, coat 2/3
    metric.process([], [_sample(label, pred).to_dict()])
    out = metric.compute_metrics(metric.results)
    seen, unseen = (0.75 + 1 / 3) / 2 * 100, 2 / 3 * 100
    assert out['mIoU_seen'] == pytest.approx(seen, abs=0.01)
    assert out['mIoU_unseen'] == pytest.approx(unseen, abs=0.01)
    assert out['hIoU'] == pytest.approx(2 * seen * unseen / (seen + unseen), abs=0.01)
    assert harmonic_iou(0.0, 0.0) == 0.0


def test_metric_rejects_unknown_or_overlapping_classes():
    metric = OpenVocabIoUMetric(seen_classes=['background', 'handbag'])
    metric.dataset_meta = dict(classes=('background', 'bag'))
    with pytest.raises(ValueError, match="unknown class 'handbag'"):
        metric.split()
    metric = OpenVocabIoUMetric(seen_classes=['bag'], unseen_classes=['bag'])
    metric.dataset_meta = dict(classes=('background', 'bag'))
    with pytest.raises(ValueError, match='both seen and unseen'):
        metric.split()
    with pytest.raises(ValueError, match='inductive'):
        OpenVocabIoUMetric(seen_classes=['bag'], setting='zero-shot')


@pytest.fixture(scope='module')
def clip():
    return OpenCLIPModel('mmext-test-tiny', model_cfg=TINY_CLIP_CFG)


def make_head(clip, **kwargs):
    cfg = dict(class_names=NAMES, seen_classes=SEEN, in_channels=32, num_prompts=3,
               num_context=4, oc_loss=dict(type='mmext.OrthogonalConstraintLoss'),
               gpr=dict(threshold=0.01))
    cfg.update(kwargs)
    head = MVPSegHead(**cfg)
    head.bind_clip(clip)
    return head


def features(clip, batch=2):
    return list(clip.dense_features(torch.randn(batch, 3, 64, 64)))


def test_head_rejects_unknown_class_names(clip):
    with pytest.raises(ValueError, match="unknown class 'shoe'"):
        MVPSegHead(class_names=NAMES, seen_classes=['shoe'], in_channels=32)
    with pytest.raises(ValueError, match='in_channels=16'):
        MVPSegHead(class_names=NAMES, seen_classes=SEEN, in_channels=16).bind_clip(clip)


def test_inductive_training_never_encodes_unseen_names_and_ignores_their_pixels(clip):
    head = make_head(clip).train()
    feats = features(clip)
    logits = head(feats)
    assert logits.shape == (2, 4, 4, 4)
    assert (logits[:, 3] == -1e4).all() and (logits[:, :3] > -1e4).all()
    # pixels of the unseen class carry no loss: relabelling them changes nothing
    a = torch.zeros(64, 64, dtype=torch.long)
    a[:, 32:] = 3
    b = a.clone()
    b[:, 32:] = 255
    torch.manual_seed(0)
    loss_a = head.loss(feats, [_sample(a), _sample(a)], None)
    loss_b = head.loss(feats, [_sample(b), _sample(b)], None)
    assert loss_a['loss_ce'].item() == pytest.approx(loss_b['loss_ce'].item())
    assert set(loss_a) >= {'loss_ce', 'loss_oc', 'loss_gpr', 'acc_seg'}
    loss_a['loss_ce'].backward()
    assert head.prompts.context.grad.abs().sum() > 0


def test_inference_covers_all_classes_and_gpr_gives_log_probabilities(clip):
    head = make_head(clip).eval()
    with torch.no_grad():
        out = head(features(clip))
    assert out.shape == (2, 4, 4, 4)
    assert torch.allclose(out.exp().sum(1), torch.ones(2, 4, 4), atol=1e-4)
    plain = make_head(clip, gpr=None).eval()
    with torch.no_grad():
        assert (plain(features(clip)) > -1e4).all()  # unseen names are candidates


def test_gpr_as_a_filter_only_removes_absent_classes_and_keeps_the_rest(clip):
    torch.manual_seed(0)
    reweight = make_head(clip, gpr=dict(threshold=0.3)).eval()
    filter_only = make_head(clip, gpr=dict(threshold=0.3, reweight=False)).eval()
    filter_only.load_state_dict(reweight.state_dict())
    plain = make_head(clip, gpr=None).eval()
    plain.load_state_dict(reweight.state_dict(), strict=False)
    feats = features(clip)
    with torch.no_grad():
        pi = reweight.presence_logits(feats[1], list(range(4))).softmax(-1)
        a, b, ref = reweight(feats), filter_only(feats), plain(feats).log_softmax(1)
    kept = pi >= 0.3
    assert kept.any() and not kept.all()  # some classes dropped, some kept
    for i in range(2):
        dropped = ~kept[i]
        assert (b[i, dropped] < -1e3).all() and (a[i, dropped] < -1e3).all()
        # kept classes: the pixel probabilities renormalised over them, no pi factor
        expected = ref[i, kept[i]] - ref[i, kept[i]].logsumexp(0, keepdim=True)
        assert torch.allclose(b[i, kept[i]], expected, atol=1e-4)
        if kept[i].sum() > 1:
            assert not torch.allclose(a[i, kept[i]], expected, atol=1e-4)
    with pytest.raises(ValueError, match="unknown keys \\['reweigh'\\]"):
        make_head(clip, gpr=dict(reweigh=False))


def test_context_init_starts_every_view_near_the_words(clip):
    tower = clip.text_tower
    _, ids, _ = tower.split_special('a photo of a')
    head = make_head(clip, num_context=len(ids), context_init='a photo of a')
    words = tower.embed_ids(ids)
    context = head.prompts.context.detach()
    assert context.shape == (3, len(ids), tower.width)
    assert ((context - words).std() - 0.02).abs() < 0.005  # words + N(0, 0.02^2)
    assert not torch.equal(context[0], context[1])  # the views differ
    with pytest.raises(ValueError, match=f'set num_context={len(ids)}'):
        make_head(clip, num_context=len(ids) + 1, context_init='a photo of a')


def test_transductive_training_labels_confident_unseen_pixels(clip):
    torch.manual_seed(0)
    head = make_head(clip, setting='transductive', pseudo_label_threshold=0.0).train()
    feats = features(clip)
    # the right half is an unseen class (its pixels carry no label in training), the left half
    # void (255: boundaries, crop padding): only the unseen half may get pseudo-labels
    labels = torch.full((64, 64), 255, dtype=torch.long)
    labels[:, 32:] = NAMES.index(next(n for n in NAMES if n not in SEEN))
    losses = head.loss(feats, [_sample(labels), _sample(labels)], None)
    assert 0 < losses['pseudo_label_ratio'] <= 0.5
    void = torch.full((64, 64), 255, dtype=torch.long)
    assert head.loss(feats, [_sample(void)] * 2, None)['pseudo_label_ratio'] == 0
    strict = make_head(clip, setting='transductive', pseudo_label_threshold=1.0).train()
    assert strict.loss(feats, [_sample(labels)] * 2, None)['pseudo_label_ratio'] == 0


def test_zero_shot_baseline_uses_templates_and_has_nothing_to_train(clip):
    head = make_head(clip, learn_prompts=False, gpr=None).eval()
    assert not any(p.requires_grad for p in head.parameters())
    with torch.no_grad():
        assert head(features(clip)).shape == (2, 4, 4, 4)
    with pytest.raises(RuntimeError, match='nothing to train'):
        head.train().loss(features(clip), [_sample(torch.zeros(64, 64, dtype=torch.long))] * 2,
                          None)
