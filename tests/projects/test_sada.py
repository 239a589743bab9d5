"""SADA: the selective attack, the area prior, prototypes and the Gaussian EMD, ProDA and
Tip-Adapter, and the few-shot split files."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample
from PIL import Image

from mmext.clip.classifiers import ProDAClassifier, TipAdapterClassifier
from mmext.datasets import FewShotDataset, sample_few_shot
from mmext.datasets.fashion_mnist import CorruptDataError, DataNotFoundError
from projects.sada import (
    AreaPriorLoss,
    GaussianEMDLoss,
    PrototypeBank,
    SADAClassifier,
    SelectiveAttackAdapter,
    apply_perturbation,
    selective_perturbation,
)

NAMES = ['ant', 'bee', 'cat']


@pytest.fixture(scope='module')
def clip_cfg(tiny_clip_folder):
    return dict(model_name=f'local-dir:{tiny_clip_folder}')


# ---------------------------------------------------------------------- attack
@pytest.mark.parametrize('steps', [1, 3])
def test_attack_acts_only_where_the_map_is_below_one_and_within_eps(steps):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    keep = torch.ones(2, 1, 8, 8)
    keep[:, :, :, 4:] = 0.25  # the right half may be attacked
    weights = torch.randn(3 * 8 * 8)
    eps = 2 / 255
    delta = selective_perturbation(lambda x: (x.flatten(1) @ weights).sum(), images, keep,
                                   eps=eps, steps=steps)
    attacked = apply_perturbation(images, keep, delta)
    change = (attacked - images).abs()
    assert change[..., :4].max() == 0
    assert change.max() <= eps + 1e-7 and change[..., 4:].max() > 0
    assert delta.abs().max() <= eps + 1e-7
    # the attack raises the loss it was given
    assert (attacked.flatten(1) @ weights).sum() > (images.flatten(1) @ weights).sum()


def test_the_map_gets_the_gradient_of_the_attacked_loss():
    adapter = SelectiveAttackAdapter()
    images = torch.rand(1, 3, 8, 8)
    keep = adapter(images)
    assert keep.shape == (1, 1, 8, 8) and 0 <= keep.min() and keep.max() <= 1
    delta = torch.full_like(images, 0.01)
    apply_perturbation(images, keep, delta).sum().backward()
    assert adapter.conv_in.weight.grad is not None and adapter.conv_in.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('with_prior', [True, False])
def test_area_prior_keeps_the_map_from_saturating(with_prior):
    """A pressure towards M = 1 (as the attacked CE gives) with and without the prior."""
    torch.manual_seed(0)
    adapter = SelectiveAttackAdapter()
    prior = AreaPriorLoss(rho=0.5)
    optimizer = torch.optim.Adam(adapter.parameters(), lr=0.05)
    images = torch.rand(4, 3, 8, 8)
    for _ in range(200):
        keep = adapter(images)
        loss = 0.1 * (1 - keep).mean() + (prior(keep) if with_prior else 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    mean = adapter(images).mean().item()
    assert (mean < 0.65) if with_prior else (mean > 0.9)


# ------------------------------------------------------------------- alignment
def test_closed_form_emd_equals_pots_exact_emd_for_gaussians():
    import ot
    rng = np.random.RandomState(0)
    mean_a, std_a = np.array([0.0, 1.0]), np.array([1.0, 0.5])
    mean_b, std_b = np.array([1.5, -0.5]), np.array([0.4, 1.2])
    n = 1500
    xa = mean_a + std_a * rng.randn(n, 2)
    xb = mean_b + std_b * rng.randn(n, 2)
    exact = ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(xa, xb))  # squared cost
    closed = GaussianEMDLoss()(*(torch.tensor(v)[None] for v in (mean_a, std_a, mean_b, std_b)))
    assert closed.item() == pytest.approx(exact, rel=0.05)


def test_prototype_initialisation_matches_the_class_means():
    bank = PrototypeBank(num_classes=2, num_prototypes=4, dim=3)
    feats = F.normalize(torch.randn(4, 2, 3), dim=-1)  # 4 images x 2 views
    labels = torch.tensor([0, 1, 0, 1])
    bank.set_from_features(feats, labels)
    mean, _ = bank.statistics()
    for c in range(2):
        torch.testing.assert_close(mean[c], feats[labels == c].reshape(-1, 3).mean(0))
    assert bool(bank.initialised)
    with pytest.raises(ValueError, match='class 1 has no training image'):
        PrototypeBank(2, 2, 3).set_from_features(feats[:1], torch.tensor([0]))


def sada(clip_cfg, **kwargs):
    torch.manual_seed(0)
    model = SADAClassifier(clip_cfg, num_shots=1, class_names=NAMES, num_prompts=4,
                           num_context=2, prompts_per_step=2, attack=dict(eps=2 / 255),
                           orthogonality_loss=dict(type='mmext.PromptOrthogonalityLoss',
                                                   loss_weight=0.1),
                           emd_loss=dict(type='mmext.GaussianEMDLoss'), **kwargs)
    feats = F.normalize(torch.randn(3, 8, model.clip.embed_dim), dim=-1)
    model.init_from_features(feats, torch.tensor([0, 1, 2]))
    return model


def test_emd_gradient_reaches_prototypes_and_prompts(clip_cfg):
    model = sada(clip_cfg)
    model.train()
    losses = model.loss(torch.rand(2, 3, 64, 64), [DataSample().set_gt_label(0),
                                                   DataSample().set_gt_label(2)])
    losses['loss_emd'].backward()
    assert model.prototypes.prototypes.grad.abs().sum() > 0
    assert model.prompts.context.grad.abs().sum() > 0


def test_a_training_step_trains_adapter_prompts_and_prototypes_only(clip_cfg):
    model = sada(clip_cfg)
    model.train()
    views = [torch.rand(2, 3, 64, 64) for _ in range(2)]  # two views of two images
    losses = model.loss(views, [DataSample().set_gt_label(1), DataSample().set_gt_label(2)])
    assert set(losses) == {'loss_cls', 'loss_adv', 'loss_area', 'loss_orth', 'loss_emd'}
    sum(losses.values()).backward()
    trained = {n.split('.')[0] for n, p in model.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained == {'adapters', 'prompts', 'prototypes'}
    model.eval()
    with torch.no_grad():
        preds = model.predict(torch.rand(2, 3, 64, 64))
    assert all(torch.allclose(p.pred_score.sum(), torch.tensor(1.0)) for p in preds)


def test_ablations_drop_their_losses(clip_cfg):
    model = SADAClassifier(clip_cfg, num_shots=1, class_names=NAMES, num_prompts=4,
                           num_context=2, prompts_per_step=2)  # no attack, no EMD, no L_m
    model.init_from_features(torch.randn(3, 8, model.clip.embed_dim), torch.arange(3))
    model.train()
    losses = model.loss(torch.rand(1, 3, 64, 64), [DataSample().set_gt_label(0)])
    assert set(losses) == {'loss_cls'} and not hasattr(model, 'adapters')
    uninitialised = SADAClassifier(clip_cfg, num_shots=1, class_names=NAMES, num_prompts=4,
                                   num_context=2, prompts_per_step=2)
    with pytest.raises(RuntimeError, match='InitFromTrainFeaturesHook'):
        uninitialised.loss(torch.rand(1, 3, 64, 64), [DataSample().set_gt_label(0)])


# ------------------------------------------------------------- the baselines
def test_proda_evaluates_the_mean_of_all_prompts(clip_cfg):
    torch.manual_seed(0)
    model = ProDAClassifier(clip_cfg, class_names=NAMES, num_prompts=4, num_context=2,
                            prompts_per_step=2).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(images)
        text = model.prompts(model.clip.text_tower, NAMES)  # (C, K, D)
        mean = F.normalize(F.normalize(text, dim=-1).mean(1), dim=-1)
        expected = model.clip.logit_scale * model.extract_feat(images) @ mean.T
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert model.prompts.positions == ['front', 'middle', 'end', 'end']


def test_tip_adapter_adds_the_cache_affinities(clip_cfg):
    model = TipAdapterClassifier(clip_cfg, class_names=NAMES, alpha=2.0, beta=3.0)
    images = torch.randn(2, 3, 64, 64)
    with pytest.raises(RuntimeError, match='cache is empty'):
        model(images)
    keys = torch.randn(3, 2, model.clip.embed_dim)
    model.init_from_features(keys, torch.tensor([2, 0, 1]))
    feats = model.extract_feat(images)
    zero_shot = model.clip.logit_scale * feats @ model.clip.zero_shot_weights(NAMES).T
    cache = F.normalize(F.normalize(keys, dim=-1).mean(1), dim=-1)
    affinity = torch.exp(-3.0 * (1 - feats @ cache.T))
    values = F.one_hot(torch.tensor([2, 0, 1]), 3).float()
    torch.testing.assert_close(model(images), zero_shot + 2.0 * affinity @ values,
                               atol=1e-4, rtol=1e-4)
    other = TipAdapterClassifier(clip_cfg, class_names=NAMES)
    other.load_state_dict(model.state_dict())  # the cache travels in the checkpoint
    assert not other.needs_feature_init()


# ------------------------------------------------------------------ few-shot
@pytest.fixture
def split_folder(tmp_path):
    rows = {'train': [], 'val': [], 'test': []}
    rng = np.random.RandomState(0)
    (tmp_path / 'images').mkdir()
    for split, per_class in (('train', 5), ('val', 3), ('test', 2)):
        for label, name in enumerate(NAMES):
            for i in range(per_class):
                path = f'{name}/{split}_{i}.png'
                (tmp_path / 'images' / name).mkdir(exist_ok=True)
                Image.fromarray(rng.randint(0, 255, (8, 8, 3), np.uint8)).save(
                    tmp_path / 'images' / path)
                rows[split].append([path, label, name])
    (tmp_path / 'split_zhou_Tiny.json').write_text(json.dumps(rows))
    return tmp_path


def test_split_file_reader_and_shots(split_folder):
    make = dict(data_root=str(split_folder), split_file='split_zhou_Tiny.json')
    train = FewShotDataset(**make, split='train', num_shots=2, seed=1)
    assert train.metainfo['classes'] == tuple(NAMES) and len(train) == 6
    assert sorted(train.get_gt_labels().tolist()) == [0, 0, 1, 1, 2, 2]
    again = FewShotDataset(**make, split='train', num_shots=2, seed=1)
    other = FewShotDataset(**make, split='train', num_shots=2, seed=2)
    def paths(dataset):
        return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]

    assert paths(train) == paths(again) and paths(train) != paths(other)
    assert len(FewShotDataset(**make, split='val', num_shots=16 // 4)) == 9  # min(k, 4), 3 have
    assert len(FewShotDataset(**make, split='test', num_shots=2)) == 6  # test: every image
    items = [('a', 0, 'x'), ('b', 0, 'x'), ('c', 1, 'y')]
    assert len(sample_few_shot(items, 1, seed=0)) == 2


def test_split_file_bad_input(split_folder, tmp_path):
    make = dict(data_root=str(split_folder), split_file='split_zhou_Tiny.json')
    with pytest.raises(ValueError, match=r"has only 5 train images; use at most 5 shots"):
        FewShotDataset(**make, split='train', num_shots=8)
    (split_folder / 'images/bee/train_0.png').unlink()
    with pytest.raises(DataNotFoundError, match='1 images that split_zhou_Tiny.json lists'):
        FewShotDataset(**make, split='train')
    with pytest.raises(DataNotFoundError, match='split_zhou_<Name>.json'):
        FewShotDataset(data_root=str(tmp_path), split_file='nothing.json')
    (tmp_path / 'bad.json').write_text('{"train": [["a.png", 0]]}')
    with pytest.raises(CorruptDataError, match=r'\[image path, label, class name\]'):
        FewShotDataset(data_root=str(tmp_path), split_file='bad.json')


def test_coop_split_tool_for_imagenet_and_aircraft(tmp_path):
    from tests.conftest import run_tool
    net = tmp_path / 'imagenet'
    (net / 'classnames.txt').parent.mkdir()
    (net / 'classnames.txt').write_text('n01 goldfish\nn02 great white shark\n')
    for folder in ('train', 'val'):
        for wnid in ('n01', 'n02'):
            (net / 'images' / folder / wnid).mkdir(parents=True)
            Image.new('RGB', (8, 8)).save(net / 'images' / folder / wnid / 'a.JPEG')
    result = run_tool('tools/data/make_coop_split.py', 'imagenet', net)
    assert result.returncode == 0, result.stdout
    test = FewShotDataset(data_root=str(net), split_file='split_zhou_ImageNet.json',
                          split='test')
    assert test.metainfo['classes'] == ('goldfish', 'great white shark') and len(test) == 2
    air = tmp_path / 'aircraft'
    (air / 'images').mkdir(parents=True)
    (air / 'variants.txt').write_text('707-320\nA300B4\n')
    for part, rows in (('train', '1 707-320\n2 A300B4\n'), ('val', '3 A300B4\n'),
                       ('test', '4 707-320\n')):
        (air / f'images_variant_{part}.txt').write_text(rows)
    for i in range(1, 5):
        Image.new('RGB', (8, 8)).save(air / 'images' / f'{i}.jpg')
    assert run_tool('tools/data/make_coop_split.py', 'fgvc-aircraft', air).returncode == 0
    train = FewShotDataset(data_root=str(air), split_file='split_zhou_FGVCAircraft.json',
                           num_shots=1)
    assert sorted(train.get_gt_labels().tolist()) == [0, 1]
    (air / 'images_variant_test.txt').write_text('4 747-400\n')
    result = run_tool('tools/data/make_coop_split.py', 'fgvc-aircraft', air)
    assert result.returncode != 0 and "variant '747-400'" in result.stdout
