"""What a merged config trains with, read off ``Config.fromfile(...)``, beside the papers'.

A config's comment can say "lr x0.1 at epoch 400" while an inherited scheduler drops it at 334.
:func:`summarize_schedule` reads the values the runner will use from the merged config;
:data:`PAPER_SCHEDULES` holds what each paper (or our choice, where the paper is silent)
prescribes for the production configs, and :func:`schedule_mismatches` compares the two. The
tests run the comparison on every production config; ``tools/analysis/schedule_table.py``
prints the tables the methods' READMEs show.
"""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from mmengine.config import Config

# The fields compared, in the order the tables show them.
FIELDS = ('epochs', 'iters', 'batch', 'optimizer', 'lr', 'weight_decay', 'backbone_lr_mult',
          'momentum', 'clip_grad', 'warmup_epochs', 'lr_drops', 'cosine', 'drop_path',
          'label_smoothing')


def _find_key(node: Any, key: str) -> Any:
    """The first value stored under ``key`` anywhere in a nested config (depth first)."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        children = node.values()
    elif isinstance(node, (list, tuple)):
        children = node
    else:
        return None
    for child in children:
        found = _find_key(child, key)
        if found is not None:
            return found
    return None


def _gpus(config_path: str | Path) -> int | None:
    """The GPU count of the OpenMMLab file name (``..._8xb2-...`` -> 8), or None."""
    match = re.search(r'_(\d+)xb(\d+)', Path(config_path).name)
    return int(match.group(1)) if match else None


def summarize_schedule(cfg: Config, config_path: str | Path | None = None,
                       part: str | None = None) -> dict:
    """The schedule the runner will train with.

    Returns a dict with the keys of :data:`FIELDS` (``None`` where the config sets nothing):
    ``epochs`` / ``iters`` of the train loop, the total ``batch`` (GPUs from the file name x
    ``train_dataloader.batch_size``; for a file name without them, ``auto_scale_lr``'s
    ``base_batch_size``), the optimizer's type, ``lr``, ``weight_decay`` and
    ``momentum``, the backbone's ``lr_mult``, the gradient clipping norm, the linear warm-up
    length in epochs (or in iterations for an iteration-based loop), the epochs (iterations)
    where a step scheduler multiplies the lr and by how much, whether a cosine decay follows,
    the model's ``drop_path_rate`` and its head's label smoothing. ``part`` names one optimizer
    of a multi-optimizer config (DCP-NAS's ``parent`` / ``child`` / ``arch``): its wrapper and
    its schedulers are read.
    """
    train_cfg = cfg.get('train_cfg') or {}
    wrapper = cfg.get('optim_wrapper') or {}
    schedulers = cfg.get('param_scheduler') or []
    if part is not None:
        if part not in wrapper:
            raise KeyError(f'optim_wrapper has no optimizer {part!r}; it has '
                           f'{sorted(k for k in wrapper if isinstance(wrapper[k], dict))}')
        wrapper = wrapper[part]
        schedulers = schedulers.get(part, []) if isinstance(schedulers, dict) else schedulers
    optimizer = wrapper.get('optimizer') or {}
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    warmup, drops, cosine = None, None, False
    for scheduler in schedulers:
        kind = scheduler.get('type', '')
        kind = kind if isinstance(kind, str) else kind.__name__
        if 'Momentum' in kind:
            continue
        if kind == 'LinearLR':
            warmup = scheduler.get('end')
        elif kind == 'MultiStepLR':
            gamma = scheduler.get('gamma', 0.1)
            drops = [(m, gamma) for m in scheduler.get('milestones', [])]
        elif kind in ('CosineAnnealingLR', 'CosineRestartLR'):
            cosine = True
        elif kind == 'PolyLR':
            cosine = 'poly'
    custom_keys = (wrapper.get('paramwise_cfg') or {}).get('custom_keys') or {}
    backbone = custom_keys.get('backbone') or {}
    clip = wrapper.get('clip_grad') or {}
    loader = cfg.get('train_dataloader') or {}
    batch = loader.get('batch_size')
    gpus = _gpus(config_path) if config_path is not None else None
    if batch is not None and gpus is not None:
        batch *= gpus
    elif (cfg.get('auto_scale_lr') or {}).get('base_batch_size'):  # a short name: the total
        batch = cfg.auto_scale_lr.base_batch_size  # batch the config says it was tuned for
    model = cfg.get('model') or {}
    smoothing = _find_key(model, 'label_smooth_val')
    return dict(
        epochs=train_cfg.get('max_epochs'), iters=train_cfg.get('max_iters'), batch=batch,
        optimizer=optimizer.get('type'), lr=optimizer.get('lr'),
        weight_decay=optimizer.get('weight_decay'), backbone_lr_mult=backbone.get('lr_mult'),
        momentum=optimizer.get('momentum'), clip_grad=clip.get('max_norm'),
        warmup_epochs=warmup, lr_drops=drops, cosine=cosine,
        drop_path=_find_key(model, 'drop_path_rate'), label_smoothing=smoothing)


# What the papers prescribe, per production config (file-name patterns under configs/); where
# a paper is silent, the entry says which choice the config makes.
# Each entry: patterns, the expected values (only the fields given are compared) and where they
# come from. Bi-ViT's learning rate follows DeiT's rule, 5e-4 x total batch / 512.
PAPER_SCHEDULES: list[dict] = [
    dict(method='qdetr', patterns=['qdetr/qdetr_r50_*500e_coco*.py', 'qdetr/r50_4bit.py'],
         source='Q-DETR paper (COCO; clip and weight decay from its code)',
         expect=dict(epochs=500, batch=16, optimizer='AdamW', lr=1e-4, weight_decay=1e-4,
                     backbone_lr_mult=0.1, clip_grad=0.1, lr_drops=[(400, 0.1)])),
    dict(method='qdetr', patterns=['qdetr/*300e_voc0712*.py'],
         source='Q-DETR paper (VOC; clip and weight decay from its code)',
         expect=dict(epochs=300, batch=16, optimizer='AdamW', lr=1e-4, weight_decay=1e-4,
                     backbone_lr_mult=0.1, clip_grad=0.1, lr_drops=[(200, 0.1)])),
    dict(method='qdetr', patterns=['qdetr/smca-detr_r50_*50e_coco*.py'],
         source='SMCA-DETR paper (single scale, 50 epochs; optimizer, weight decay and clip '
                "as DETR's)",
         expect=dict(epochs=50, batch=16, optimizer='AdamW', lr=1e-4, weight_decay=1e-4,
                     backbone_lr_mult=0.1, clip_grad=0.1, lr_drops=[(40, 0.1)])),
    dict(method='qdetr', patterns=['qdetr/qdetr_smca-detr_r50_*50e_coco*.py'],
         source='Q-DETR paper (Q-SMCA-DETR on COCO: 50 epochs, lr x0.1 at 40; clip and weight '
                'decay from its code)',
         expect=dict(epochs=50, batch=16, optimizer='AdamW', lr=1e-4, weight_decay=1e-4,
                     backbone_lr_mult=0.1, clip_grad=0.1, lr_drops=[(40, 0.1)])),
    dict(method='bivit', patterns=['bivit/*deit-*_in1k*.py'],
         source='Bi-ViT code (DeiT recipe): 5e-4 x batch / 512, 5 warm-up epochs, cosine',
         expect=dict(epochs=300, batch=1024, optimizer='AdamW', lr=1e-3, weight_decay=0.05,
                     warmup_epochs=5, cosine=True, drop_path=0.1, label_smoothing=0.1)),
    dict(method='bivit', patterns=['bivit/*swin-tiny*_in1k*.py'],
         source="Bi-ViT code's DeiT recipe; drop-path 0.2, Swin-T's own (our choice: the code "
                'covers DeiT only)',
         expect=dict(epochs=300, batch=1024, optimizer='AdamW', lr=1e-3, weight_decay=0.05,
                     warmup_epochs=5, cosine=True, drop_path=0.2, label_smoothing=0.1)),
    dict(method='dcpnas', patterns=['dcpnas/dcpnas_search_1xb64-50e_cifar10.py'],
         part='child', source="our choice (the paper gives none): DARTS's weight optimizer",
         expect=dict(epochs=50, batch=64, optimizer='SGD', lr=0.025, momentum=0.9,
                     weight_decay=3e-4, cosine=True)),
    dict(method='dcpnas', patterns=['dcpnas/dcpnas_search_1xb64-50e_cifar10.py'],
         part='parent', source="our choice (the paper gives none): DARTS's weight optimizer",
         expect=dict(epochs=50, batch=64, optimizer='SGD', lr=0.025, momentum=0.9,
                     weight_decay=3e-4, cosine=True)),
    dict(method='dcpnas', patterns=['dcpnas/dcpnas_search_1xb64-50e_cifar10.py'],
         part='arch', source="our choice (the paper gives none): DARTS's architecture optimizer",
         expect=dict(epochs=50, batch=64, optimizer='Adam', lr=3e-4, weight_decay=1e-3,
                     cosine=False)),
    dict(method='dcpnas', patterns=['dcpnas/dcpnas-retrain-step1_8xb64-256e_in1k.py'],
         source='DCP-NAS code (ReActNet-style step 1)',
         expect=dict(epochs=256, batch=512, optimizer='AdamW', lr=1e-3, weight_decay=1e-5,
                     cosine=True)),
    dict(method='dcpnas', patterns=['dcpnas/dcpnas-retrain-step2_8xb64-256e_in1k.py'],
         source='DCP-NAS code (ReActNet-style step 2)',
         expect=dict(epochs=256, batch=512, optimizer='AdamW', lr=1e-3, weight_decay=0,
                     cosine=True)),
    dict(method='dcpnas', patterns=['dcpnas/dcpnas-released-retrain-step1_8xb64-256e_in1k.py'],
         source='DCP-NAS code (released genotype and width, ReActNet-style step 1)',
         expect=dict(epochs=256, batch=512, optimizer='AdamW', lr=1e-3, weight_decay=1e-5,
                     cosine=True)),
    dict(method='dcpnas', patterns=['dcpnas/dcpnas-released-retrain-step2_8xb64-256e_in1k.py'],
         source='DCP-NAS code (released genotype and width, ReActNet-style step 2)',
         expect=dict(epochs=256, batch=512, optimizer='AdamW', lr=1e-3, weight_decay=0,
                     cosine=True)),
    dict(method='dcpnas', patterns=['dcpnas/dcpnas-retrain_1xb96-600e_cifar10.py'],
         source="our choice (the paper has no CIFAR-10 retraining recipe): DARTS's length and "
                "batch with the ImageNet step 2's optimizer (Adam, weight decay 0, cosine) at "
                'its lr, not scaled to the batch',
         expect=dict(epochs=600, batch=96, optimizer='Adam', lr=1e-3, weight_decay=0,
                     cosine=True)),
    dict(method='mvpseg', patterns=['mvpseg/mvpseg_vit-b16_8xb2-20k_voc12aug*.py'],
         source='our choice (the paper gives no schedule)',
         expect=dict(iters=20000, batch=16, optimizer='AdamW', lr=1e-3)),
    dict(method='mvpseg', patterns=['mvpseg/mvpseg_vit-b16_8xb2-80k_coco-stuff*.py'],
         source='our choice (the paper gives no schedule)',
         expect=dict(iters=80000, batch=16, optimizer='AdamW', lr=1e-3)),
    dict(method='mvpseg', patterns=['mvpseg/mvpseg_vit-b16_8xb2-40k_pascal-context*.py'],
         source='our choice (the paper gives no schedule)',
         expect=dict(iters=40000, batch=16, optimizer='AdamW', lr=1e-3)),
    dict(method='mvpseg', patterns=['mvpseg/mvpseg-plus_*coco-stuff164k*.py'],
         source="our choice (the paper gives no schedule for MVP-SEG+'s second segmentor): "
                "mmseg's DeepLabV3+ 80k schedule",
         expect=dict(iters=80000, batch=16, optimizer='SGD', lr=0.01, momentum=0.9,
                     weight_decay=5e-4, cosine='poly')),
]


def paper_schedules(config_path: str | Path, configs_root: str | Path = 'configs') -> list[dict]:
    """The :data:`PAPER_SCHEDULES` entries whose patterns match ``config_path`` (relative to
    ``configs_root``); one per optimizer of a multi-optimizer config, none for a config the
    papers do not cover (a demo)."""
    relative = Path(config_path).resolve().relative_to(Path(configs_root).resolve()).as_posix()
    return [entry for entry in PAPER_SCHEDULES
            if any(fnmatch.fnmatch(relative, pattern) for pattern in entry['patterns'])]


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        try:
            return abs(float(expected) - float(actual)) <= 1e-9 * max(1.0, abs(float(expected)))
        except (TypeError, ValueError):
            return False
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _same(e, a) for pair_e, pair_a in zip(expected, actual)
            for e, a in zip(pair_e, pair_a))
    return expected == actual


def schedule_mismatches(summary: dict, expected: dict) -> dict:
    """{field: (expected, merged)} for every expected field the merged config does not match."""
    return {field: (value, summary.get(field)) for field, value in expected.items()
            if not _same(value, summary.get(field))}


def format_value(field: str, value: Any) -> str:
    """A table cell: lr drops as 'x0.1 at 400', absent values as '-'."""
    if value is None or value is False:
        return '-'
    if field == 'lr_drops':
        return ', '.join(f'x{gamma:g} at {at}' for at, gamma in value) or '-'
    if value is True:
        return 'yes'
    if isinstance(value, float):
        return f'{value:g}'
    return str(value)
