"""Check, before a runner is built, that the files a config names are there, and say which are
missing and where they belong (instead of a raw FileNotFoundError deep inside a dataset)."""
from __future__ import annotations

import os.path as osp
from pathlib import Path

from mmengine.config import Config

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATORS = {'val_dataloader': 'val_evaluator', 'test_dataloader': 'test_evaluator'}
# datasets whose ``download`` defaults to True (mmpretrain's torchvision-style sets)
DOWNLOAD_BY_DEFAULT = ('CIFAR10', 'CIFAR100', 'MNIST', 'FashionMNIST')
CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt', '.safetensors', '.bin')
DATA_HELP = ("Put the dataset there in the layout README.md's section 'Production datasets' "
             'describes, or point the config at your copy (--cfg-options '
             '<loader>.dataset.data_root=...). The demo configs run on the embedded data '
             '(make data).')


def _remote(path) -> bool:
    return '://' in str(path)


def join_root(root: str | None, path: str) -> str:
    if root and not osp.isabs(path) and not _remote(path):
        return osp.join(root, path)
    return path


def dataset_configs(cfg) -> list:
    """A dataset config and those it wraps (RepeatDataset, ConcatDataset, ClassBalanced...)."""
    if not isinstance(cfg, dict):
        return []
    found = [cfg]
    inner = cfg.get('dataset')
    if isinstance(inner, dict):
        found += dataset_configs(inner)
    for item in cfg.get('datasets', []) or []:
        found += dataset_configs(item)
    return found


def missing_data(cfg: Config, loaders=LOADERS) -> list[tuple[str, str, str]]:
    """``(config key, path, dataset type)`` for every annotation file or data root that the
    given data loaders and their evaluators name and that does not exist. Datasets of mmext's
    own (``mmext.*``: they check their files and name the command that makes them), datasets
    that download themselves and remote storage (a URI, or ``backend_args``) are left to their
    own checks."""
    missing = []
    for loader in loaders:
        if not isinstance(cfg.get(loader), dict):
            continue
        for i, dataset in enumerate(dataset_configs(cfg[loader].get('dataset'))):
            kind = str(dataset.get('type', ''))
            downloads = dataset.get('download', kind.rsplit('.', 1)[-1] in DOWNLOAD_BY_DEFAULT)
            if kind.startswith('mmext.') or downloads or 'dataset' in dataset \
                    or 'datasets' in dataset or dataset.get('backend_args') \
                    or _remote(dataset.get('data_root', '')):
                continue
            key = f'{loader}.dataset' + ('' if i == 0 else f' (wrapped #{i})')
            root = dataset.get('data_root')
            if root and not Path(root).exists():
                missing.append((f'{key}.data_root', str(root), kind))
                continue
            ann = dataset.get('ann_file')
            if isinstance(ann, str) and ann and not Path(join_root(root, ann)).exists():
                missing.append((f'{key}.ann_file', join_root(root, ann), kind))
    for name in [EVALUATORS[loader] for loader in loaders if loader in EVALUATORS]:
        evaluators = cfg.get(name)
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            ann = evaluator.get('ann_file') if isinstance(evaluator, dict) else None
            if isinstance(ann, str) and ann and not _remote(ann) and not Path(ann).exists():
                missing.append((f'{name}.ann_file', ann, str(evaluator.get('type', ''))))
    return missing


def _checkpoint_paths(node, key: str = 'model') -> list[tuple[str, str]]:
    """``(config key, path)`` of local checkpoint files named inside ``node``."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            found += _checkpoint_paths(v, f'{key}.{k}')
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            found += _checkpoint_paths(v, f'{key}[{i}]')
    elif isinstance(node, str) and key.rsplit('.', 1)[-1].endswith('checkpoint') \
            and not _remote(node) and node.endswith(CHECKPOINT_SUFFIXES):
        found.append((key, node))
    return found


def missing_checkpoints(cfg: Config) -> list[tuple[str, str]]:
    """``load_from`` (unless resuming) and the local checkpoint files the model config names
    (a teacher's, a frozen animator's, ``init_cfg.checkpoint``) that do not exist."""
    paths = _checkpoint_paths(cfg.get('model'))
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and not _remote(load_from) and not cfg.get('resume'):
        paths.append(('load_from', load_from))
    return [(k, p) for k, p in paths if not Path(p).exists()]


def check_inputs(cfg: Config, config_path: str, loaders=LOADERS,
                 checkpoints: bool = True) -> None:
    """Raise one FileNotFoundError listing every missing data file and checkpoint, with where
    they belong and how to point the config elsewhere."""
    lines = []
    data = missing_data(cfg, loaders)
    if data:
        lines.append(f'{config_path} needs data that is not here:')
        lines += [f'  {key}: {path} ({kind or "dataset"})' for key, path, kind in data]
        lines.append(DATA_HELP)
    ckpts = missing_checkpoints(cfg) if checkpoints else []
    if ckpts:
        lines.append(f'{config_path} names checkpoints that are not here:')
        lines += [f'  {key}: {path}' for key, path in ckpts]
        lines.append('Download or train them (the config\'s comments and its project README '
                     'say which), or set the key with --cfg-options KEY=PATH.')
    if lines:
        raise FileNotFoundError('\n'.join(lines))
