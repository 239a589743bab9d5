"""DCP-NAS through the stock runners: a search writes a genotype, the mmpretrain retrain config
builds from it and trains / tests, and the same backbone trains in an mmdet detector."""
import json
import re
import shutil

import pytest

from ..conftest import REPO, run_tool, scene_cfg_options

SEARCH = REPO / 'configs/dcpnas/dcpnas_search_fashion-mnist.py'
RETRAIN = REPO / 'configs/dcpnas/dcpnas-retrain_1xb128-3e_fashion-mnist.py'
DETECTION = REPO / 'configs/dcpnas/conditional-detr_dcpnas-fashion-mnist-c16_fashion-scenes.py'


def _loader_options(loaders: dict[str, int]) -> list[str]:
    options = []
    for loader, count in loaders.items():
        options += [f'{loader}.dataset.indices={count}', f'{loader}.batch_size=2',
                    f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    return options


SEARCH_OPTIONS = ['default_hooks.logger.interval=1', 'model.supernet.channels=4',
                  *_loader_options({'train_dataloader': 4, 'train_cfg.arch_dataloader': 4,
                                    'val_dataloader': 4})]


@pytest.fixture(scope='module')
def searched(fashion_mnist_root, tmp_path_factory):
    """A 2-iteration search (4 channels) through tools/train.py; its work_dir."""
    work_dir = tmp_path_factory.mktemp('search')
    options = ['train_cfg.max_epochs=1', *SEARCH_OPTIONS]
    search = run_tool('tools/train.py', SEARCH, '--work-dir', work_dir, '--cfg-options',
                      *options)
    assert search.returncode == 0, search.stdout[-3000:]
    return work_dir, search.stdout


def test_search_runs_in_the_runner_and_writes_the_genotype(searched):
    work_dir, log = searched
    assert re.search(r'Epoch\(train\) +\[1\]\[2/2\]', log), log[-2000:]
    for term in ('loss_parent', 'loss_nas', 'loss_child_kl', 'discrepancy', 'tangent_cos',
                 'accuracy/top1', 'Epoch 1 genotype: Genotype(normal='):
        assert term in log, term
    lines = (work_dir / 'genotypes.jsonl').read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])['epoch'] == 1
    assert (work_dir / 'genotype.png').stat().st_size > 10_000
    from mmext.nas import load_genotype
    assert str(load_genotype(str(work_dir / 'genotype.py'))) == json.loads(lines[0])['genotype']


def test_search_resumes_with_its_optimizers_and_architecture(searched, tmp_path):
    work_dir, _ = searched
    resumed = tmp_path / 'resumed'
    shutil.copytree(work_dir, resumed)
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_1.pth'))
    run = run_tool('tools/train.py', SEARCH, '--work-dir', resumed, '--resume', '--cfg-options',
                   'train_cfg.max_epochs=2', *SEARCH_OPTIONS)
    assert run.returncode == 0, run.stdout[-3000:]
    assert 'resumed epoch: 1, iter: 2' in run.stdout
    assert re.search(r'Epoch\(train\) +\[2\]\[2/2\]', run.stdout), run.stdout[-2000:]
    assert len((resumed / 'genotypes.jsonl').read_text().splitlines()) == 2
    import torch
    state = torch.load(resumed / 'epoch_2.pth', map_location='cpu', weights_only=False)
    assert set(state['optimizer']) == {'parent', 'child', 'arch'}
    assert 'arch.normal' in state['state_dict'] and 'decoupled.psi_normal' in state['state_dict']


def test_retrain_config_builds_from_the_searched_genotype_and_tests(searched, tmp_path):
    work_dir, _ = searched
    options = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
               f"model.backbone.genotype={work_dir / 'genotype.py'}",
               'model.backbone.channels=4', 'model.head.in_channels=64',
               *_loader_options({'train_dataloader': 4, 'val_dataloader': 4,
                                 'test_dataloader': 4})]
    train = run_tool('tools/train.py', RETRAIN, '--work-dir', tmp_path / 'retrain',
                     '--cfg-options', *options)
    assert train.returncode == 0, train.stdout[-3000:]
    assert re.search(r'Epoch\(train\) +\[1\]\[2/2\]', train.stdout)
    test = run_tool('tools/test.py', RETRAIN, tmp_path / 'retrain/epoch_1.pth', '--work-dir',
                    tmp_path / 'test', '--cfg-options', *options)
    assert test.returncode == 0, test.stdout[-3000:]
    assert 'accuracy/top1:' in test.stdout


def test_searched_backbone_trains_in_an_mmdet_detector(searched, tiny_scenes, tmp_path):
    work_dir, _ = searched
    options = scene_cfg_options(tiny_scenes) + [
        f"model.backbone.genotype={work_dir / 'genotype.py'}"]
    train = run_tool('tools/train.py', DETECTION, '--work-dir', tmp_path / 'det',
                     '--cfg-options', *options)
    assert train.returncode == 0, train.stdout[-3000:]
    assert re.search(r'Iter\(train\) +\[2/2\]', train.stdout), train.stdout[-2000:]
    assert 'coco/bbox_mAP:' in train.stdout
