"""FashionSceneItems: single-item canvases as a classification set with exact masks and boxes."""
import json

import numpy as np
import pytest

from mmext.datasets import CorruptDataError, DataNotFoundError, FashionSceneItems


def test_samples_carry_label_mask_and_box(tiny_scene_items):
    dataset = FashionSceneItems(data_root=str(tiny_scene_items), split='val')
    assert len(dataset) == 8
    coco = json.loads((tiny_scene_items / 'annotations/instances_val.json').read_text())
    for i, ann in enumerate(coco['annotations']):
        info = dataset.get_data_info(i)
        assert info['gt_label'] == ann['category_id'] - 1
        mask = info['gt_mask']
        assert mask.shape == (128, 128) and mask.dtype == bool and mask.sum() == ann['area']
        ys, xs = np.nonzero(mask)
        x, y, w, h = info['gt_bbox']
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
    packed = FashionSceneItems(  # scoped names: another test may leave a default scope set
        data_root=str(tiny_scene_items), split='val', pipeline=[
            dict(type='mmpretrain.LoadImageFromFile'),
            dict(type='mmpretrain.PackInputs', algorithm_keys=('gt_mask', 'gt_bbox'))])[0]
    assert packed['inputs'].shape == (3, 128, 128)
    assert packed['data_samples'].gt_mask.shape == (128, 128)


def test_bad_sets_are_named(tiny_scenes, tiny_scene_items, tmp_path):
    with pytest.raises(ValueError, match='exactly one per canvas'):
        FashionSceneItems(data_root=str(tiny_scenes), split='val')  # 2-5 items per canvas
    with pytest.raises(DataNotFoundError, match='--min-items 1 --max-items 1'):
        FashionSceneItems(data_root=str(tmp_path), split='val')
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        FashionSceneItems(data_root=str(tiny_scene_items), split='test')
    broken = tmp_path / 'broken'
    (broken / 'annotations').mkdir(parents=True)
    (broken / 'annotations/instances_val.json').write_text('{"images": [')
    with pytest.raises(CorruptDataError, match='not a COCO annotation file'):
        FashionSceneItems(data_root=str(broken), split='val')
