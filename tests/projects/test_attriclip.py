"""AttriCLIP: the attribute word bank, its losses and the per-image prompted classifier."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from mmext.clip import build_prompt_sequences
from projects.attriclip import (
    AttributeWordBank,
    AttriCLIPClassifier,
    KeyMatchingLoss,
    PromptOrthogonalityLoss,
)

NAMES = ['ant', 'bee', 'cat', 'dog']


@pytest.fixture(scope='module')
def clip_cfg(tiny_clip_folder):
    return dict(model_name=f'local-dir:{tiny_clip_folder}')


def model_for(clip_cfg, **bank):
    torch.manual_seed(0)
    return AttriCLIPClassifier(clip_cfg, class_names=NAMES,
                               bank=dict(dict(num_attributes=5, prompt_length=3, top_k=2), **bank),
                               orthogonality_loss=dict(type='mmext.PromptOrthogonalityLoss'))


def test_bank_selects_top_k_by_the_stated_score():
    bank = AttributeWordBank(num_attributes=4, key_dim=2, prompt_length=1, prompt_dim=3,
                             top_k=2, score='dot')
    with torch.no_grad():
        bank.keys.copy_(torch.tensor([[1., 0], [3., 0.1], [0.1, 1], [0, 2]]))
    z = torch.tensor([[1., 0.1], [0.1, 1.]])
    assert bank.select(z).tolist() == [[1, 0], [3, 2]]  # z . k: the long keys win, best first
    bank.score = 'cosine'
    assert bank.select(z).tolist() == [[1, 0], [2, 3]]  # direction alone
    assert bank.contexts(torch.tensor([[1, 0]])).shape == (1, 2, 3)
    with pytest.raises(ValueError, match='top_k'):
        AttributeWordBank(num_attributes=2, top_k=3)
    with pytest.raises(ValueError, match='key_dim'):
        bank.scores(torch.zeros(1, 5))


def test_key_loss_reaches_the_keys_and_only_them(clip_cfg):
    model = model_for(clip_cfg)
    images = torch.randn(3, 3, 64, 64)
    feats = model.extract_feat(images)
    loss = model.key_loss(feats, model.bank.keys, model.bank.select(feats))
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.any()}
    assert grads == {'bank.keys'}
    # only the selected keys move
    selected = set(model.bank.select(feats).flatten().tolist())
    moved = {i for i in range(5) if model.bank.keys.grad[i].any()}
    assert moved == selected


def test_key_loss_value():
    feats = torch.tensor([[1., 0.]])
    keys = torch.tensor([[2., 0.], [0., 1.]])
    loss = KeyMatchingLoss(loss_weight=1.0)(feats, keys, torch.tensor([[0, 1]]))
    assert loss.item() == pytest.approx(1 - 0.5)


def test_orthogonality_loss_value_and_gradient(clip_cfg):
    feats = torch.tensor([[1., 0.], [1., 1.], [0., 1.]])
    cos = 2 ** -0.5
    expected = (2 * cos + 2 * cos + 2 * 0) / 6
    assert PromptOrthogonalityLoss(1.0)(feats).item() == pytest.approx(expected)
    model = model_for(clip_cfg)
    model.orthogonality_loss(model.prompt_features()).backward()
    assert model.bank.prompts.grad is not None and model.bank.prompts.grad.any()
    assert model.bank.keys.grad is None


def test_bank_set_to_a_template_equals_encode_text(clip_cfg):
    model = model_for(clip_cfg)
    tower = model.clip.text_tower
    _, ids, _ = tower.split_special('a photo of')
    bank = AttributeWordBank(num_attributes=2, key_dim=model.clip.embed_dim,
                             prompt_length=len(ids), prompt_dim=tower.width, top_k=1)
    with torch.no_grad():
        bank.prompts.copy_(tower.embed_ids(ids)[None].expand(2, -1, -1))
    model.bank = bank
    with torch.no_grad():
        text = model.tuple_text_features(torch.tensor([[0]]))[0]  # (C, D)
        expected = model.clip.encode_text([f'a photo of {n}.' for n in NAMES])
    torch.testing.assert_close(F.normalize(text, dim=-1), expected, atol=1e-5, rtol=1e-5)


def naive_logits(model, feats):
    """Per image: its own prompts, all classes, one text pass each (B x S sequences)."""
    tower = model.clip.text_tower
    rows = []
    for z in feats:
        sel = model.bank.select(z[None])
        embeds, lengths = build_prompt_sequences(tower, model.bank.contexts(sel), NAMES)
        text = F.normalize(tower.encode_embeddings(embeds, lengths), dim=-1)
        rows.append(model.clip.logit_scale * text @ z)
    return torch.stack(rows)


def test_per_tuple_text_passes_equal_the_naive_computation(clip_cfg):
    model = model_for(clip_cfg, num_attributes=3, top_k=1)
    images = torch.randn(6, 3, 64, 64)
    feats = model.extract_feat(images)
    assert len(torch.unique(model.bank.select(feats), dim=0)) < 6  # some tuples are shared
    grouped, _ = model.seen_logits(feats)
    torch.testing.assert_close(grouped, naive_logits(model, feats), atol=1e-4, rtol=1e-4)
    model.eval()
    with torch.no_grad():  # the cached path, twice (the second from the cache)
        for _ in range(2):
            cached, _ = model.seen_logits(feats)
            torch.testing.assert_close(cached, grouped, atol=1e-4, rtol=1e-4)


def test_training_step_losses_and_seen_classes(clip_cfg):
    model = model_for(clip_cfg)
    model.set_seen_classes([1, 3])
    images = torch.randn(2, 3, 64, 64)
    losses = model.loss(images, [DataSample().set_gt_label(3), DataSample().set_gt_label(1)])
    assert set(losses) == {'loss_cls', 'loss_key', 'loss_orth'}
    sum(losses.values()).backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained == {'bank.keys', 'bank.prompts'}
    model.eval()
    with torch.no_grad():
        preds = model.predict(images)
    assert all(int(p.pred_label) in (1, 3) for p in preds)
    assert all(p.pred_score[[0, 2]].sum() == 0 for p in preds)


PRODUCTION = {  # config: (tasks, key-loss weight, orthogonality weight)
    'attriclip_vit-l-14_10x10-10e_cifar100.py': (10, 0.7, 0.3),
    'attriclip_vit-l-14_10x10-10e_imagenet100.py': (10, 0.5, 0.1),
    'attriclip_vit-l-14_20x10-10e_cifar100-imagenet100.py': (20, 0.7, 0.3),
}


@pytest.mark.parametrize('name', sorted(PRODUCTION))
def test_production_configs_follow_the_paper(name):
    """The merged configs: bank, losses, class order, schedule (spec section 6)."""
    from mmengine.config import Config

    from tests.conftest import REPO
    tasks, key_weight, orth_weight = PRODUCTION[name]
    cfg = Config.fromfile(REPO / 'configs/attriclip' / name)
    assert cfg.model.clip == dict(model_name='ViT-L-14', pretrained='openai')
    assert (cfg.model.bank.num_attributes, cfg.model.bank.prompt_length,
            cfg.model.bank.top_k) == (10, 12, 3)
    assert cfg.model.key_loss.loss_weight == key_weight
    assert cfg.model.orthogonality_loss.loss_weight == orth_weight
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.dataset.class_order_seed == 1993 and loader.dataset.classes_per_task == 10
    assert cfg.train_dataloader.batch_size == 32
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'SGD' and optimizer.weight_decay == 0
    assert optimizer.lr == pytest.approx(1e-3 * 32 / 20)
    assert cfg.train_cfg.epochs_per_task == 10
    (scheduler, ) = cfg.param_scheduler  # no warm-up
    assert scheduler.type == 'CosineRestartLR' and scheduler.by_epoch
    assert scheduler.periods == [10] * tasks and scheduler.eta_min_ratio == 1e-3


@pytest.fixture(scope='module')
def items_all_classes(tmp_path_factory, fashion_mnist_root):
    """40 single-item canvases; their train split holds every class."""
    from mmext.datasets import SceneConfig, make_fashion_scenes
    return make_fashion_scenes(tmp_path_factory.mktemp('items40'),
                               SceneConfig(num_train=40, num_val=8, min_items=1, max_items=1),
                               progress=False)


def demo_options(items, tiny_clip_folder):
    opts = [f'model.clip.model_name=local-dir:{tiny_clip_folder}',
            'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.dataset.data_root={items}',
                 f'{loader}.dataset.dataset.split=train',  # the 8 val canvases miss classes
                 f'{loader}.dataset.dataset.pipeline.1.scale=(64,64)',  # the tiny CLIP's size
                 f'{loader}.batch_size=8', f'{loader}.num_workers=0']
    return opts


def test_demo_configs_through_the_stock_tools(items_all_classes, tiny_clip_folder, tmp_path):
    from tests.conftest import run_tool
    opts = demo_options(items_all_classes, tiny_clip_folder)
    result = run_tool('tools/train.py',
                      'configs/attriclip/attriclip_demo-clip_5x2-5e_fashion-scene-items.py',
                      '--work-dir', tmp_path / 'train', '--cfg-options', *opts,
                      'train_cfg.epochs_per_task=1', 'param_scheduler.0.periods=[1,1,1,1,1]',
                      'default_hooks.checkpoint.interval=1')
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'task 5/5' in result.stdout and 'continual/Forgetting' in result.stdout
    assert (tmp_path / 'train/epoch_5.pth').is_file()
    result = run_tool('tools/test.py',
                      'configs/attriclip/zero-shot_demo-clip_5x2_fashion-scene-items.py', 'none',
                      '--work-dir', tmp_path / 'zero', '--cfg-options', *opts)
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'continual/matrix' in result.stdout and 'continual/Avg' in result.stdout


def test_selection_statistics_by_hand():
    import importlib.util

    from tests.conftest import REPO
    spec = importlib.util.spec_from_file_location(
        'attriclip_selection', REPO / 'tools/analysis/attriclip_selection.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    stats = tool.statistics({0: [(0, 1), (0, 1), (2, 3)], 1: [(0, 1)]}, num_keys=4)
    assert stats['tasks'][0]['distinct'] == 2
    assert stats['tasks'][0]['top'][0] == ([0, 1], pytest.approx(66.7))
    assert stats['tasks'][0]['shared_with_other_tasks'] == pytest.approx(66.7)
    assert stats['tasks'][1]['shared_with_other_tasks'] == 100.0
    assert stats['key_share'] == [37.5, 37.5, 12.5, 12.5]
