"""The production configs train with the papers' schedules, read off the merged configs."""
import importlib.util

import pytest
from mmengine.config import Config

from mmext.utils.schedule_summary import paper_schedules, schedule_mismatches, summarize_schedule

from .conftest import REPO

METHODS = ('qdetr', 'bivit', 'dcpnas', 'mvpseg')
# production configs: the methods' configs for the papers' datasets (the embedded-data
# miniatures and demos, named after fashion-mnist / fashion-scenes, have their own budgets)
PRODUCTION = sorted(p.relative_to(REPO) for m in METHODS for p in (REPO / 'configs' / m).glob('*.py')
                    if 'fashion' not in p.name)


def _schedule_table_tool():
    spec = importlib.util.spec_from_file_location(
        'schedule_table', REPO / 'tools/analysis/schedule_table.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('config', PRODUCTION, ids=str)
def test_production_config_trains_with_the_paper_schedule(config):
    entries = paper_schedules(REPO / config, REPO / 'configs')
    assert entries, f'{config} has no entry in mmext.utils.schedule_summary.PAPER_SCHEDULES'
    cfg = Config.fromfile(REPO / config)
    for entry in entries:
        summary = summarize_schedule(cfg, REPO / config, entry.get('part'))
        assert schedule_mismatches(summary, entry['expect']) == {}, entry['source']


def test_summary_reads_the_merged_config_not_the_base(tmp_path):
    (tmp_path / 'base.py').write_text(
        "train_cfg = dict(max_epochs=500)\n"
        "train_dataloader = dict(batch_size=2)\n"
        "optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),\n"
        "    clip_grad=dict(max_norm=0.1),\n"
        "    paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=0.1))))\n"
        "param_scheduler = [dict(type='MultiStepLR', end=500, milestones=[334], gamma=0.1)]\n"
        "model = dict(type='Wrapper', classifier=dict(backbone=dict(drop_path_rate=0.0),\n"
        "    head=dict(loss=dict(label_smooth_val=0.1))))\n")
    child = tmp_path / 'child_8xb2-500e_coco.py'
    child.write_text(
        "_base_ = './base.py'\n"
        "model = dict(classifier=dict(backbone=dict(drop_path_rate=0.1)))\n"
        "param_scheduler = [dict(type='LinearLR', by_epoch=True, end=5),\n"
        "                   dict(type='MultiStepLR', end=500, milestones=[400], gamma=0.1)]\n")
    summary = summarize_schedule(Config.fromfile(child), child)
    assert summary['epochs'] == 500 and summary['batch'] == 16  # 8 GPUs x 2 from the name
    assert summary['lr_drops'] == [(400, 0.1)] and summary['warmup_epochs'] == 5
    assert summary['drop_path'] == 0.1 and summary['label_smoothing'] == 0.1
    assert summary['backbone_lr_mult'] == 0.1 and summary['clip_grad'] == 0.1
    assert summary['cosine'] is False
    base = summarize_schedule(Config.fromfile(tmp_path / 'base.py'), tmp_path / 'base.py')
    wrong = schedule_mismatches(base, dict(lr_drops=[(400, 0.1)], epochs=500))
    assert wrong == {'lr_drops': ([(400, 0.1)], [(334, 0.1)])}


def test_qdetr_coco_drops_the_lr_at_epoch_400_not_mmdets_334():
    cfg = Config.fromfile(REPO / 'configs/qdetr/r50_4bit.py')
    assert summarize_schedule(cfg)['lr_drops'] == [(400, 0.1)]


def test_dcpnas_search_splits_cifar10_without_fashion_mnist_leftovers():
    cfg = Config.fromfile(REPO / 'configs/dcpnas/dcpnas_search_1xb64-50e_cifar10.py')
    weights = cfg.train_dataloader.dataset
    arch = cfg.train_cfg.arch_dataloader.dataset
    assert weights.type == arch.type == 'CIFAR10'
    assert 'index_range' not in arch and 'index_range' not in weights  # Fashion-MNIST's option
    assert set(weights.indices).isdisjoint(arch.indices)
    assert len(weights.indices) + len(arch.indices) == 50000


@pytest.mark.parametrize('method', METHODS)
def test_readme_schedule_tables_are_generated_and_current(method):
    tool = _schedule_table_tool()
    readme = (REPO / f'projects/{method}/README.md').read_text()
    start = tool.START.format(method)
    assert start in readme, f'projects/{method}/README.md has no {start} block'
    block = readme.split(start, 1)[1].split(tool.END, 1)[0].strip()
    assert block == tool.method_tables(method).strip(), (
        f'run: python tools/analysis/schedule_table.py {method} '
        f'--update projects/{method}/README.md')
