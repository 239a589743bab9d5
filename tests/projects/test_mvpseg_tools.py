"""MVP-SEG through the stock mmseg runner (tools/train.py, tools/test.py), on a tiny CLIP that
the test writes and a tiny Fashion Scenes set."""
import re

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
