import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mmext.datasets import (
    CorruptDataError,
    DataNotFoundError,
    FashionScenesDataset,
    FashionScenesSegDataset,
    SceneConfig,
    make_fashion_scenes,
)
from mmext.datasets.fashion_scenes import compose_canvas


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob('*') if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_masks_agree_with_pixels_on_synthetic_items():
    """Solid white items (still 255 everywhere after resizing) over a background that stays
    <= 70: mask pixels and only they are bright, so the instance map must match the image."""
    items = np.full((3, 28, 28), 255, np.uint8)
    cfg = SceneConfig(min_items=4, max_items=4)
    image, instance, objects = compose_canvas(np.random.default_rng(1), items,
                                              np.array([0, 1, 2]), cfg)
    assert len(objects) >= 2
    np.testing.assert_array_equal(image.max(-1) == 255, instance > 0)
    assert image[instance == 0].max() <= 70


def test_annotations_agree_with_label_maps(tiny_scenes):
    for split in ('train', 'val'):
        coco = json.loads((tiny_scenes / f'annotations/instances_{split}.json').read_text())
        assert len(coco['images']) == {'train': 16, 'val': 8}[split]
        for img in coco['images']:
            seg = np.asarray(Image.open(tiny_scenes / split / 'labels' / img['file_name']))
            canvas = np.asarray(Image.open(tiny_scenes / split / 'images' / img['file_name']))
            assert canvas.shape == (128, 128, 3) and seg.shape == (128, 128)
            union = np.zeros_like(seg, bool)
            anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
            assert 2 <= len(anns) <= 5
            for ann in anns:
                mask = mask_utils.decode(ann['segmentation']).astype(bool)
                assert not (union & mask).any(), 'instance masks overlap'
                union |= mask
                assert mask.sum() == ann['area'] > 0
                assert (seg[mask] == ann['category_id']).all()
                ys, xs = np.nonzero(mask)
                x, y, w, h = ann['bbox']
                assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
            np.testing.assert_array_equal(seg > 0, union)


def test_splits_draw_from_disjoint_sources(tiny_scenes):
    meta = {s: {a['fashion_mnist_split'] for a in json.loads(
        (tiny_scenes / f'annotations/instances_{s}.json').read_text())['annotations']}
        for s in ('train', 'val')}
    assert meta == {'train': {'train'}, 'val': {'test'}}


def test_same_seed_same_files_other_seed_other_files(tmp_path, fashion_mnist_root):
    cfg = SceneConfig(num_train=4, num_val=2, seed=3)
    a = make_fashion_scenes(tmp_path / 'a', cfg, progress=False)
    b = make_fashion_scenes(tmp_path / 'b', cfg, progress=False)
    c = make_fashion_scenes(tmp_path / 'c', SceneConfig(num_train=4, num_val=2, seed=4),
                            progress=False)
    assert _digest(a) == _digest(b) != _digest(c)


def test_stock_datasets_read_the_set(tiny_scenes):
    det = FashionScenesDataset(data_root=str(tiny_scenes),
                               ann_file='annotations/instances_val.json',
                               data_prefix=dict(img='val/images/'), pipeline=[])
    assert len(det) == 8 and det[0]['instances']
    seg = FashionScenesSegDataset(data_root=str(tiny_scenes),
                                  data_prefix=dict(img_path='val/images',
                                                   seg_map_path='val/labels'), pipeline=[])
    assert len(seg) == 8 and len(seg.metainfo['classes']) == 11


def test_missing_annotation_file_says_how_to_make_it(tmp_path):
    with pytest.raises(DataNotFoundError, match='make_fashion_scenes.py'):
        FashionScenesDataset(data_root=str(tmp_path), ann_file='annotations/instances_val.json',
                             data_prefix=dict(img='val/images/'), pipeline=[])


@pytest.mark.parametrize('content, message', [('{"images": [', 'not valid JSON'),
                                              ('{"images": []}', 'not a COCO annotation file')])
def test_corrupt_annotation_file_is_named(tmp_path, content, message):
    (tmp_path / 'ann.json').write_text(content)
    with pytest.raises(CorruptDataError, match=message) as info:
        FashionScenesDataset(data_root=str(tmp_path), ann_file='ann.json',
                             data_prefix=dict(img='images/'), pipeline=[])
    assert 'ann.json' in str(info.value) and '--force' in str(info.value)


def test_missing_segmentation_folder_is_named(tmp_path):
    with pytest.raises(DataNotFoundError, match='label folder'):
        (tmp_path / 'images').mkdir()
        FashionScenesSegDataset(data_root=str(tmp_path),
                                data_prefix=dict(img_path='images', seg_map_path='labels'),
                                pipeline=[])
