"""Check a COCO-style annotation file for what mmdet drops or misreads silently: boxes of zero
or negative size, boxes outside their image, category ids the file does not define,
annotations of images it does not list, an empty split, image files that are not there, and
class names of the config that the file does not have (mmdet then trains those classes on no
boxes). ``tools/data/check_annotations.py`` runs it on every COCO-style dataset of a config."""
from __future__ import annotations

import json
import os.path as osp
from pathlib import Path

# a box may reach past its image by this many pixels (rounding in COCO's own annotations)
SLACK = 1.0


def _listed(ids: list, limit: int = 5) -> str:
    return f'{len(ids)} (e.g. ids {ids[:limit]})'


def coco_problems(ann_file: str | Path, classes: list[str] | tuple | None = None,
                  img_dir: str | Path | None = None) -> list[str]:
    """One line per kind of problem in ``ann_file``, each naming what is wrong and the fix;
    empty if the file is sound. ``classes``: the config's class names (its metainfo);
    ``img_dir``: where the images' ``file_name`` are, to check that they exist."""
    try:
        data = json.loads(Path(ann_file).read_text())
    except (OSError, ValueError) as error:
        return [f'{ann_file} cannot be read as JSON ({error}); write the file again']
    if not isinstance(data, dict) or not {'images', 'annotations', 'categories'} <= set(data):
        return [f'{ann_file} is not a COCO annotation file (it needs images, annotations and '
                'categories)']
    images = {im['id']: im for im in data['images']}
    names = {c['id']: c['name'] for c in data['categories']}
    problems = []
    if not images:
        problems.append('the split is empty (no images): point the config at the right file')
    if classes is not None:
        absent = [c for c in classes if c not in names.values()]
        if absent:
            problems.append(f'classes of the config that the file does not name: {absent[:8]} '
                            f'(the file has {sorted(names.values())[:8]}); set '
                            "metainfo=dict(classes=...) to the file's category names, or the "
                            'dataset type that fits the file')
    unknown_category, unknown_image, degenerate, outside = [], [], [], []
    for ann in data['annotations']:
        if ann.get('category_id') not in names:
            unknown_category.append(ann.get('id'))
        image = images.get(ann.get('image_id'))
        if image is None:
            unknown_image.append(ann.get('id'))
            continue
        x, y, w, h = ann['bbox']
        if w <= 0 or h <= 0:
            degenerate.append(ann.get('id'))
        elif x < -SLACK or y < -SLACK or x + w > image['width'] + SLACK or \
                y + h > image['height'] + SLACK:
            outside.append(ann.get('id'))
    for ids, what, fix in (
            (unknown_category, 'annotations with a category id the file does not define',
             'add the category or fix the ids'),
            (unknown_image, 'annotations of images the file does not list',
             'add the images or drop the annotations'),
            (degenerate, 'boxes of zero or negative width or height (mmdet drops them without '
             'a word)', 'boxes are [x, y, width, height]'),
            (outside, f'boxes outside their image by more than {SLACK:g} pixel',
             'clip them to the image or fix the image size')):
        if ids:
            problems.append(f'{what}: {_listed(ids)}; {fix}')
    if img_dir is not None:
        missing = [im['file_name'] for im in images.values()
                   if not osp.exists(osp.join(img_dir, im['file_name']))]
        if missing:
            problems.append(f'image files not in {img_dir}: {len(missing)} (e.g. {missing[:3]});'
                            " check data_prefix.img or copy the images")
    return problems
