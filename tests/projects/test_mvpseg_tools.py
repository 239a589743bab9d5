"""MVP-SEG through the stock mmseg runner (tools/train.py, tools/test.py), on a tiny CLIP that
the test writes and a tiny Fashion Scenes set."""
import re
from pathlib import Path

import pytest

from tests.conftest import run_tool

CONFIG = 'configs/mvpseg/mvpseg_demo-clip_1xb16-200it_fashion-scenes.py'


def seg_cfg_options(scenes, clip_folder, iters=2):
    opts = [f'model.clip.model_name=local-dir:{clip_folder}', 'model.decode_head.in_channels=32',
            'model.decode_head.num_context=4', f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={iters}', f'default_hooks.checkpoint.interval={iters}',
            'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={scenes}', f'{loader}.batch_size=2',
                 f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    return opts


def metric(output: str, name: str) -> float:
    found = re.findall(rf'{name}: (-?[\d.]+|nan)', output)
    assert found, f'{name} not printed:\n{output[-3000:]}'
    return float(found[-1])


@pytest.mark.slow
def test_demo_config_trains_and_tests_two_iterations(tmp_path, tiny_scenes, tiny_clip_folder):
    work = tmp_path / 'work'
    opts = seg_cfg_options(tiny_scenes, tiny_clip_folder)
    result = run_tool('tools/train.py', CONFIG, '--work-dir', work, '--cfg-options', *opts)
    assert result.returncode == 0, result.stdout[-5000:]
    out = result.stdout
    for key in ('loss_ce', 'loss_oc', 'loss_gpr'):
        assert key in out, f'{key} missing from the training log'
    for key in ('mIoU_seen', 'mIoU_unseen', 'hIoU'):
        assert 0 <= metric(out, key) <= 100
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()
    result = run_tool('tools/test.py', CONFIG, ckpt, '--work-dir', tmp_path / 'test',
                      '--cfg-options', *opts)
    assert result.returncode == 0, result.stdout[-5000:]
    assert 0 <= metric(result.stdout, 'hIoU') <= 100
    # GPR as a filter only: an inference option on the same checkpoint
    result = run_tool('tools/test.py', CONFIG, ckpt, '--work-dir', tmp_path / 'filter',
                      '--cfg-options', *opts, 'model.decode_head.gpr.reweight=False')
    assert result.returncode == 0, result.stdout[-5000:]
    assert 0 <= metric(result.stdout, 'hIoU') <= 100
    # GPR's presence predictions per class, seen and unseen
    import json
    out_file = tmp_path / 'presence.json'
    result = run_tool('tools/analysis/mvpseg_presence.py', CONFIG, ckpt, '--out', out_file,
                      '--cfg-options', *opts)
    assert result.returncode == 0, result.stdout[-5000:]
    presence = json.loads(out_file.read_text())
    assert presence['images'] == 8 and set(presence['summary']) == {'seen', 'unseen'}
    per_class = presence['per_class']
    assert [n for n, v in per_class.items() if v['unseen']] == ['Pullover', 'Sandal', 'Bag']
    for values in per_class.values():
        for key in ('kept_when_present', 'kept_when_absent'):
            assert values[key] is None or 0 <= values[key] <= 1


# ------------------------------------------------------------------ MVP-SEG+ (two stages)
PSEUDO_TOOL = 'tools/data/mvpseg_pseudo_labels.py'
PLUS_CONFIG = 'configs/mvpseg/mvpseg-plus_deeplabv3plus-r18-d8_1xb8-2k_fashion-scenes.py'
# Fashion Scenes label files: 0 background, v = class v - 1; the demo's unseen classes
UNSEEN_FILE_VALUES = [3, 6, 9]  # Pullover, Sandal, Bag


@pytest.fixture
def void_scenes(tmp_path, tiny_scenes):
    """A copy of the tiny set whose train labels have a void (255) band over the objects, as
    boundaries have in VOC / COCO-Stuff."""
    import shutil

    import numpy as np
    from PIL import Image
    scenes = tmp_path / 'scenes'
    shutil.copytree(tiny_scenes, scenes)
    for path in sorted((scenes / 'train/labels').glob('*.png')):
        labels = np.array(Image.open(path))
        labels[60:68] = 255
        Image.fromarray(labels).save(path)
    return scenes


def _config(path, opts):
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({k: DictAction._parse_iterable(v) for k, v in
                         (o.split('=', 1) for o in opts)})
    return cfg


@pytest.fixture
def tiny_mvpseg(tmp_path, void_scenes, tiny_clip_folder):
    """The demo MVP-SEG with the tiny CLIP and random (seeded) prompts, saved as the stock
    runner saves a checkpoint; returns the checkpoint, the --cfg-options and the model.
    Without GPR: with it, the random tiny model paints every pixel of an image one class."""
    import torch
    from mmseg.apis import init_model
    opts = seg_cfg_options(void_scenes, tiny_clip_folder) + ['model.decode_head.gpr=None']
    torch.manual_seed(0)
    model = init_model(_config(CONFIG, opts), None, 'cpu')
    path = tmp_path / 'mvpseg_tiny.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=model.decode_head.class_names))), path)
    return path, opts, model


@pytest.mark.slow
def test_pseudo_labels_then_stage2_training(tmp_path, void_scenes, tiny_mvpseg):
    import numpy as np
    from mmseg.apis import inference_model
    from PIL import Image
    checkpoint, opts, model = tiny_mvpseg
    out = void_scenes / 'train/labels_mvpseg-plus'
    result = run_tool(PSEUDO_TOOL, CONFIG, checkpoint, '--out', out, '--threshold', '0',
                      '--device', 'cpu', '--num-workers', '0', '--cfg-options', *opts)
    assert result.returncode == 0, result.stdout[-5000:]
    assert 'pseudo-labelled annotation files written' in result.stdout
    originals = sorted((void_scenes / 'train/labels').glob('*.png'))
    assert sorted(p.name for p in out.glob('*.png')) == [p.name for p in originals]
    labelled = 0
    for original in originals:
        gt = np.array(Image.open(original))
        written = np.array(Image.open(out / original.name))
        assert written.shape == gt.shape and written.dtype == np.uint8
        unseen = np.isin(gt, UNSEEN_FILE_VALUES)
        assert (written[~unseen] == gt[~unseen]).all()  # seen, background and void as they were
        assert (written[60:68] == 255).all()  # the void band never gets a pseudo-label
        # unseen pixels: the model's prediction where it is an unseen class, else ignored
        pred = inference_model(model, str(void_scenes / 'train/images' / original.name))
        pred = pred.pred_sem_seg.data[0].numpy() + 1  # training label -> file value
        expected = np.where(np.isin(pred, UNSEEN_FILE_VALUES), pred, 255)
        assert (written[unseen] == expected[unseen]).all()
        labelled += int((written[unseen] != 255).sum())
    assert labelled > 0, 'no unseen pixel got a pseudo-label'
    summary = (out / 'mvpseg_pseudo_labels.json').read_text()
    assert f'"labelled_pixels": {labelled}' in summary
    # the originals are untouched (the void band is the fixture's, the rest as generated)
    assert np.isin(np.array(Image.open(originals[0])), UNSEEN_FILE_VALUES + [0, 255]).any()

    # stage 2: the ordinary segmentor on the pseudo-labelled folder, through the stock runner
    plus_opts = [o for o in opts if o.split('=')[0].split('.')[0] in (
        'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg')] + [
        'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']
    cfg = _config(PLUS_CONFIG, plus_opts)
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    assert all(Path(d['seg_map_path']).parent == out for d in train_set.data_list)
    work = tmp_path / 'plus'
    result = run_tool('tools/train.py', PLUS_CONFIG, '--work-dir', work, '--cfg-options',
                      *plus_opts)
    assert result.returncode == 0, result.stdout[-5000:]
    assert 'loss_ce' in result.stdout
    for key in ('mIoU_seen', 'mIoU_unseen', 'hIoU'):
        assert 0 <= metric(result.stdout, key) <= 100
    assert (work / 'iter_2.pth').is_file()

    # optional second round (our option): the stage-2 model pseudo-labels the original set
    again = void_scenes / 'train/labels_round2'
    result = run_tool(PSEUDO_TOOL, PLUS_CONFIG, work / 'iter_2.pth', '--out', again,
                      '--threshold', '0', '--device', 'cpu', '--num-workers', '0',
                      '--cfg-options', *plus_opts,
                      'train_dataloader.dataset.data_prefix.seg_map_path=train/labels')
    assert result.returncode == 0, result.stdout[-5000:]
    for original in originals:
        gt, written = (np.array(Image.open(p)) for p in (original, again / original.name))
        unseen = np.isin(gt, UNSEEN_FILE_VALUES)
        assert (written[~unseen] == gt[~unseen]).all()
        assert np.isin(written[unseen], UNSEEN_FILE_VALUES + [255]).all()


def test_pseudo_label_tool_rejects_bad_input(tmp_path, void_scenes):
    opts = [f'train_dataloader.dataset.data_root={void_scenes}']
    fake = tmp_path / 'model.pth'
    result = run_tool(PSEUDO_TOOL, CONFIG, tmp_path / 'missing.pth', '--out', tmp_path / 'o')
    assert result.returncode != 0 and 'missing.pth not found' in result.stdout
    fake.write_bytes(b'')
    result = run_tool(PSEUDO_TOOL, CONFIG, fake, '--out', tmp_path / 'o', '--cfg-options',
                      f'train_dataloader.dataset.data_root={tmp_path / "nowhere"}')
    assert result.returncode != 0
    assert f'{tmp_path / "nowhere"}/train/images does not exist' in result.stdout
    labels = void_scenes / 'train/labels'
    before = sorted((p.name, p.stat().st_mtime_ns) for p in labels.iterdir())
    result = run_tool(PSEUDO_TOOL, CONFIG, fake, '--out', labels, '--cfg-options', *opts)
    assert result.returncode != 0 and 'originals are never overwritten' in result.stdout
    assert sorted((p.name, p.stat().st_mtime_ns) for p in labels.iterdir()) == before
