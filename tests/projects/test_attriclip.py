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
