"""MVP-SEG+ stage 1: pseudo-label the unseen classes of a training set with a trained MVP-SEG.

    python tools/data/mvpseg_pseudo_labels.py CONFIG CHECKPOINT --out DIR
        [--threshold 0.9] [--device cuda] [--num-workers 2] [--cfg-options k=v ...]

The model predicts over all classes on every image of the config's training set (its test
pipeline, no augmentation). The tool writes a copy of each annotation file into DIR, with the
same relative path and encoding, so that mmseg's stock dataset loads it with
``data_prefix.seg_map_path=DIR``:

- pixels whose ground truth is a seen class, void (255) or otherwise ignored are copied as
  they are;
- pixels whose ground truth is an unseen class (the pixels the transductive setting leaves
  unlabelled) get the predicted class where it is an unseen class with probability above
  ``--threshold`` (0.9 by default, our choice), else "ignore" (255). The unseen ground truth itself
  is never copied.

This is the rule of the transductive MVP-SEG head (``projects/mvpseg/pseudo_labels.py``).
CONFIG / CHECKPOINT may also be a trained stage-2 model (its unseen classes are those of its
``val_evaluator``) for a second round; then point its training set back at the original
annotations (``--cfg-options train_dataloader.dataset.data_prefix.seg_map_path=...``): the
candidates are the pixels whose *original* label is unseen.
The original annotations are never written: DIR must be another folder. Counts per class go to
``DIR/mvpseg_pseudo_labels.json``. Stage 2 trains an ordinary segmentor on DIR (for example
``configs/mvpseg/mvpseg-plus_deeplabv3plus-r18-d8_1xb8-2k_fashion-scenes.py``).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config, DictAction

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mmext  # noqa: E402, F401
from mmext.evaluation import split_classes  # noqa: E402
from projects.mvpseg import PseudoLabeler, annotation_lut  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the MVP-SEG config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='the trained MVP-SEG checkpoint')
    parser.add_argument('--out', type=Path, required=True,
                        help='folder for the pseudo-labelled annotation files (not the '
                        "dataset's own annotation folder)")
    parser.add_argument('--threshold', type=float, default=0.9,
                        help='keep an unseen-class prediction when its probability is above '
                        'this (default 0.9, our choice; 0 keeps every one)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--num-workers', type=int, default=2, help='data-loading processes')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    return parser.parse_args()


def fail(message: str):
    print(f'error: {message}', file=sys.stderr)
    raise SystemExit(2)


def dataset_folders(dataset_cfg) -> tuple[Path, Path]:
    """The image and annotation folders of a dataset config (data_root joined as mmengine's
    BaseDataset joins it)."""
    if 'data_prefix' not in dataset_cfg:
        fail(f"the training set ({dataset_cfg.get('type')}) is a wrapper or has no data_prefix; "
             'point train_dataloader.dataset at one mmseg dataset (e.g. --cfg-options)')
    root = dataset_cfg.get('data_root') or ''
    prefix = dataset_cfg['data_prefix']
    folders = []
    for key in ('img_path', 'seg_map_path'):
        if key not in prefix:
            fail(f'train_dataloader.dataset.data_prefix has no {key}')
        folders.append(Path(root) / prefix[key])
    return folders[0], folders[1]


def unseen_classes(head, cfg, classes: list[str]) -> list[int]:
    """The unseen class indices: an MVP-SEG head's own, or for an ordinary segmentor (a stage-2
    model, for a second round) those of the config's ``val_evaluator`` (``OpenVocabIoUMetric``)."""
    if hasattr(head, 'unseen'):
        if list(head.class_names) != classes:
            fail(f'the model classes {head.class_names} are not the dataset classes {classes}')
        unseen = head.unseen
    else:
        names = (cfg.get('val_evaluator') or {}).get('unseen_classes')
        if not names:
            fail(f'the decode head ({type(head).__name__}) has no unseen classes and the '
                 "config's val_evaluator names none; give an MVP-SEG config, or a stage-2 "
                 'config evaluated by mmext.OpenVocabIoUMetric(unseen_classes=...)')
        try:
            unseen = split_classes(classes, None, names)[1]
        except ValueError as e:
            fail(f'val_evaluator.unseen_classes: {e}')
    if not unseen:
        fail('the model has no unseen classes: there is nothing to pseudo-label')
    return list(unseen)


@torch.no_grad()
def main():
    args = parse_args()
    if not Path(args.config).is_file():
        fail(f'config {args.config} not found')
    if not Path(args.checkpoint).is_file():
        fail(f'checkpoint {args.checkpoint} not found; train MVP-SEG first '
             f'(python tools/train.py {args.config}), then give its iter_*.pth')
    if not 0 <= args.threshold < 1:
        fail(f'--threshold must be in [0, 1), not {args.threshold}')

    from mmengine.dataset import pseudo_collate
    from mmengine.utils import ProgressBar
    from mmseg.apis import init_model
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    from PIL import Image
    register_all_modules(init_default_scope=True)

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    img_dir, seg_dir = dataset_folders(cfg.train_dataloader.dataset)
    for folder, what in ((img_dir, 'image'), (seg_dir, 'annotation')):
        if not folder.is_dir():
            fail(f'training {what} folder {folder} does not exist (data_root / data_prefix of '
                 'train_dataloader.dataset; see the config for how to get the data)')
    out = args.out
    if out.resolve() == seg_dir.resolve():
        fail(f'--out {out} is the annotation folder of the training set; pseudo-labels go to '
             'another folder, the originals are never overwritten')

    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset,
                                  pipeline=cfg.test_dataloader.dataset.pipeline))
    if len(dataset) == 0:
        fail(f'the training set in {img_dir} has no images')
    model = init_model(cfg, args.checkpoint, device=args.device)
    classes = list(dataset.metainfo['classes'])
    unseen = unseen_classes(model.decode_head, cfg, classes)
    labeler = PseudoLabeler(annotation_lut(dataset.reduce_zero_label, dataset.label_map),
                            unseen, args.threshold, dataset.ignore_index)

    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=args.num_workers,
                                         collate_fn=pseudo_collate)
    out.mkdir(parents=True, exist_ok=True)
    totals = dict(images=0, unseen_pixels=0, labelled={c: 0 for c in unseen})
    progress = ProgressBar(len(dataset))
    for batch in loader:
        for sample in model.test_step(batch):
            source = Path(sample.seg_map_path)
            target = out / source.relative_to(seg_dir)
            if target.exists() and target.resolve() == source.resolve():
                fail(f'{target} is an original annotation file; choose another --out')
            with Image.open(source) as original:
                values = np.asarray(original)
                palette = original.getpalette() if original.mode == 'P' else None
            pseudo, counts = labeler(values, sample.seg_logits.data.softmax(0))
            image = Image.fromarray(pseudo)
            if palette is not None:  # a palette file (VOC) stays one: same indices, colours
                image.putpalette(palette)
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target)
            totals['images'] += 1
            totals['unseen_pixels'] += counts['unseen_pixels']
            for c, n in counts['labelled'].items():
                totals['labelled'][c] += n
            progress.update()

    labelled = sum(totals['labelled'].values())
    summary = dict(config=str(args.config), checkpoint=str(args.checkpoint),
                   threshold=args.threshold, annotations=str(seg_dir), images=totals['images'],
                   unseen_pixels=totals['unseen_pixels'], labelled_pixels=labelled,
                   labelled_per_class={classes[c]: n for c, n in totals['labelled'].items()})
    (out / 'mvpseg_pseudo_labels.json').write_text(json.dumps(summary, indent=1))
    share = 100 * labelled / max(totals['unseen_pixels'], 1)
    print(f'\n{totals["images"]} pseudo-labelled annotation files written to {out}: '
          f'{labelled} of {totals["unseen_pixels"]} unseen-class pixels labelled ({share:.1f}%, '
          f'threshold {args.threshold}); the rest of the unseen pixels are 255 (ignored)')
    for c, n in totals['labelled'].items():
        print(f'  {classes[c]}: {n} pixels')


if __name__ == '__main__':
    main()
