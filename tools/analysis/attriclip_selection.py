"""Which prompts of AttriCLIP's bank the test images of every task select.

    python tools/analysis/attriclip_selection.py \
        configs/attriclip/attriclip_demo-clip_5x2-5e_fashion-scene-items.py \
        work_dirs/attriclip_demo-clip_5x2-5e_fashion-scene-items/epoch_25.pth [--out FILE.json]

AttriCLIP forgets less than a shared prompt only if images of different tasks select different
prompts: a prompt that old images select and new images train is overwritten. For the test
images of tasks 0..T-1 (the config's test sequence, all tasks seen), this prints per task the
number of distinct ordered top-k tuples, the three most frequent with their share, and the share
of the task's images whose tuple the other tasks' images also select; and how often each key
is selected overall.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', type=Path, help='write the statistics as JSON here')
    return parser.parse_args(argv)


def selections_per_task(model, sequence, batch_size: int = 100) -> dict[int, list[tuple]]:
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader
    view = sequence.view(sequence.num_tasks - 1, 'seen')
    out = collections.defaultdict(list)
    with torch.no_grad():
        for batch in DataLoader(view, batch_size=batch_size, collate_fn=pseudo_collate):
            data = model.data_preprocessor(batch, False)
            chosen = model.bank.select(model.extract_feat(data['inputs']))
            for sel, sample in zip(chosen.tolist(), data['data_samples']):
                out[int(sample.task_id)].append(tuple(sel))
    return dict(out)


def statistics(per_task: dict[int, list[tuple]], num_keys: int) -> dict:
    stats = dict(tasks={}, key_share=[0.0] * num_keys)
    total = sum(len(v) for v in per_task.values())
    for task, tuples in sorted(per_task.items()):
        others = {t for other, ts in per_task.items() if other != task for t in ts}
        counts = collections.Counter(tuples)
        stats['tasks'][task] = dict(
            images=len(tuples), distinct=len(counts),
            top=[(list(t), round(100 * c / len(tuples), 1)) for t, c in counts.most_common(3)],
            shared_with_other_tasks=round(100 * sum(t in others for t in tuples) / len(tuples),
                                          1))
        for t in tuples:
            for key in t:
                stats['key_share'][key] += 100 / (total * len(t))
    stats['key_share'] = [round(v, 1) for v in stats['key_share']]
    return stats


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS

    import mmext  # noqa: F401
    import projects.attriclip  # noqa: F401
    cfg = Config.fromfile(args.config)
    if cfg.model.get('type') != 'mmext.AttriCLIPClassifier':
        raise SystemExit(f'{args.config} is not an AttriCLIP config (model type '
                         f'{cfg.model.get("type")})')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model).eval()
        sequence = DATASETS.build(cfg.test_dataloader.dataset)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    stats = statistics(selections_per_task(model, sequence), model.bank.num_attributes)
    for task, s in stats['tasks'].items():
        top = ', '.join(f'{tuple(t)} {share}%' for t, share in s['top'])
        print(f'task {task}: {s["images"]} images, {s["distinct"]} distinct tuples; {top}; '
              f'{s["shared_with_other_tasks"]}% select a tuple other tasks select too')
    print('share of selections per key (%):', stats['key_share'])
    if args.out:
        args.out.write_text(json.dumps(stats, indent=2))


if __name__ == '__main__':
    main()
