"""Check the COCO-style annotation files of a config's datasets before training on them.

    python tools/data/check_annotations.py CONFIG [--cfg-options k=v ...]

For each data loader (train, val, test) whose dataset reads a ``.json`` annotation file: boxes
of zero or negative size (mmdet drops them silently), boxes outside their image, unknown
category or image ids, an empty split, missing image files, and config classes the file does
not name. Prints one line per problem with its fix; exits 1 if there is any.
"""
import argparse
import sys
from pathlib import Path

from mmengine.config import Config, DictAction

# the clone's root, so that configs can import projects.<method> (custom_imports)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmext.utils.coco_check import coco_problems  # noqa: E402
from mmext.utils.data_check import LOADERS, dataset_configs, join_root  # noqa: E402


def dataset_classes(dataset: dict):
    """The class names a dataset config will use: its metainfo's, else its type's METAINFO."""
    meta = dataset.get('metainfo') or {}
    if meta.get('classes'):
        return meta['classes']
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope('mmdet')
    kind = DATASETS.get(dataset.get('type', ''))
    return getattr(kind, 'METAINFO', {}).get('classes') if kind else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    found = bad = 0
    for loader in LOADERS:
        if not isinstance(cfg.get(loader), dict):
            continue
        for dataset in dataset_configs(cfg[loader].get('dataset')):
            ann = dataset.get('ann_file')
            if not (isinstance(ann, str) and ann.endswith('.json')):
                continue
            root = dataset.get('data_root')
            prefix = (dataset.get('data_prefix') or {}).get('img')
            img_dir = join_root(root, prefix) if prefix is not None else None
            problems = coco_problems(join_root(root, ann), dataset_classes(dataset), img_dir)
            found += 1
            bad += bool(problems)
            print(f'{loader}: {join_root(root, ann)}: ' + ('sound' if not problems else
                                                       f'{len(problems)} problems'))
            for line in problems:
                print(f'  - {line}')
    if not found:
        print(f'{args.config} names no COCO-style (.json) annotation file')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
