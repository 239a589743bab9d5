"""How well an MVP-SEG model's global prompt refining (GPR) tells which classes an image holds.

    python tools/analysis/mvpseg_presence.py CONFIG CHECKPOINT [--out presence.json]
                                             [--num-images N] [--cfg-options k=v ...]

Over the config's test set, per class: how often GPR keeps it where it is present (presence
``pi_c`` at or above the head's threshold; a dropped class cannot be predicted anywhere in the
image), how often it keeps it where it is absent, and its mean ``pi_c`` in both cases; then the
same averaged over the seen and over the unseen classes. Inductive training never names an
unseen class, present or absent, so the unseen rows show what GPR does with names it never
scored.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mmext  # noqa: E402, F401
import projects.mvpseg  # noqa: E402, F401
from projects.mvpseg.analysis import load_model_and_test_set  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', type=Path, help='JSON file to write')
    parser.add_argument('--num-images', type=int, help='first N test images (default: all)')
    parser.add_argument('--batch-size', type=int, default=25)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


@torch.no_grad()
def main():
    args = parse_args()
    from mmengine.dataset import pseudo_collate
    model, dataset = load_model_and_test_set(args.config, args.checkpoint, args.cfg_options)
    head = model.decode_head
    if head.gpr_cfg is None:
        raise SystemExit('this model has no global prompt refining (model.decode_head.gpr)')
    threshold = head.gpr_cfg.get('threshold', 0.01)
    count = min(args.num_images or len(dataset), len(dataset))
    classes = list(range(head.num_classes))
    present_rows, pi_rows = [], []
    for start in range(0, count, args.batch_size):
        batch = pseudo_collate([dataset[i] for i in range(start, min(start + args.batch_size,
                                                                      count))])
        data = model.data_preprocessor(batch, False)
        feats = model.extract_feat(data['inputs'])
        pi_rows.append(head.presence_logits(feats[1], classes).softmax(-1))
        for sample in data['data_samples']:
            gt = sample.gt_sem_seg.data[0]
            present_rows.append(torch.stack([(gt == c).any() for c in classes]))
    pi, present = torch.cat(pi_rows).numpy(), torch.stack(present_rows).numpy()
    kept = pi >= threshold
    per_class = {}
    for c, name in enumerate(head.class_names):
        here, absent = present[:, c], ~present[:, c]
        per_class[name] = dict(
            unseen=c in head.unseen, images_present=int(here.sum()),
            kept_when_present=float(kept[here, c].mean()) if here.any() else None,
            kept_when_absent=float(kept[absent, c].mean()) if absent.any() else None,
            mean_pi_present=float(pi[here, c].mean()) if here.any() else None,
            mean_pi_absent=float(pi[absent, c].mean()) if absent.any() else None)

    def average(key, unseen):
        values = [v[key] for v in per_class.values() if v['unseen'] == unseen and v[key] is not None]
        return float(np.mean(values)) if values else None

    summary = {group: {key: average(key, unseen) for key in
                       ('kept_when_present', 'kept_when_absent', 'mean_pi_present',
                        'mean_pi_absent')}
               for group, unseen in (('seen', False), ('unseen', True))}
    result = dict(config=args.config, checkpoint=args.checkpoint, images=count,
                  threshold=threshold, summary=summary, per_class=per_class)
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        from mmext.utils.run_logs import relative_paths
        args.out.write_text(json.dumps(relative_paths(result, Path.cwd()), indent=2) + '\n')
        print(f'written to {args.out}')


if __name__ == '__main__':
    main()
