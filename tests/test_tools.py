"""The stock tools on the demo config: train, test (with --show-dir), torchrun DDP, bad input."""
import socket
import sys

import pytest

from .conftest import DEMO_CONFIG, REPO, run_tool, scene_cfg_options

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_demo_config_trains_then_tests_through_the_stock_runner(tiny_scenes, tmp_path):
    work = tmp_path / 'work'
    train = run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', work,
                     '--cfg-options', *scene_cfg_options(tiny_scenes))
    assert train.returncode == 0, train.stdout[-3000:]
    assert 'loaded 312 tensors of MobileNetV2 from torchvision://mobilenet_v2' in train.stdout
    assert 'Iter(train) [2/2]' in train.stdout and 'coco/bbox_mAP' in train.stdout
    checkpoint = work / 'iter_2.pth'
    assert checkpoint.is_file()

    test = run_tool('tools/test.py', DEMO_CONFIG, checkpoint, '--work-dir', tmp_path / 'test',
                    '--show-dir', tmp_path / 'shown', '--out', tmp_path / 'results.pkl',
                    '--cfg-options', *scene_cfg_options(tiny_scenes))
    assert test.returncode == 0, test.stdout[-3000:]
    assert f'Load checkpoint from {checkpoint}' in test.stdout
    assert 'coco/bbox_mAP:' in test.stdout
    assert len(list((tmp_path / 'shown').glob('*.png'))) == 8  # one drawing per val canvas
    assert (tmp_path / 'results.pkl').stat().st_size > 0

    resumed = run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', work, '--resume',
                       '--cfg-options', *scene_cfg_options(tiny_scenes, iters=3))
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout and 'Iter(train) [3/3]' in resumed.stdout


def test_dist_train_runs_two_processes_on_the_cpu(tiny_scenes, tmp_path):
    result = run_tool('bash', 'tools/dist_train.sh', DEMO_CONFIG, '2', '--work-dir', tmp_path,
                      '--cfg-options', *scene_cfg_options(tiny_scenes),
                      env={'PORT': str(_free_port())})
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'Distributed training: True' in result.stdout
    assert 'GPU number: 2' in result.stdout  # mmengine's name for the world size
    assert 'Iter(train) [2/2]' in result.stdout
    assert (tmp_path / 'iter_2.pth').is_file()


def test_unknown_mmext_type_in_a_config_fails_clearly(tiny_scenes, tmp_path):
    result = run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path, '--cfg-options',
                      'model.type=mmext.NoSuchDetector', *scene_cfg_options(tiny_scenes))
    assert result.returncode != 0
    assert 'mmext.NoSuchDetector is not in the mmdet::model registry' in result.stdout


def test_missing_data_fails_clearly(tmp_path):
    result = run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path, '--cfg-options',
                      *scene_cfg_options(tmp_path / 'no_such_set'))
    assert result.returncode != 0
    assert 'annotation file' in result.stdout and 'make_fashion_scenes.py' in result.stdout


def test_missing_checkpoint_fails_clearly(tmp_path):
    result = run_tool('tools/test.py', DEMO_CONFIG, tmp_path / 'nothing.pth')
    assert result.returncode != 0
    assert 'nothing.pth does not exist' in result.stdout


def test_install_recognises_a_finished_install():
    stamp = REPO / '.venv-stamp-probe'
    prefix = sys.prefix
    if not (__import__('pathlib').Path(prefix) / '.mmext-install').is_file():
        pytest.skip('this interpreter was not set up by tools/install.sh')
    result = run_tool('bash', 'tools/install.sh', prefix, timeout=120)
    assert result.returncode == 0, result.stdout
    assert 'install up to date' in result.stdout
    assert not stamp.exists()
