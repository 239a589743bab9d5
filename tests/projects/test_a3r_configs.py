"""The A3R demo config for a few iterations through tools/train.py and tools/test.py, on a tiny
CLIP and a tiny retrieval set the test writes."""
import re

import pytest

from tests.conftest import run_tool

CONFIG = 'configs/a3r/a3r_demo-clip_1xb32-5e_fashion-retrieval.py'


@pytest.mark.slow
def test_demo_config_trains_and_tests(tiny_scene_items, tiny_clip_folder, tmp_path):
    data = tmp_path / 'retrieval'
    result = run_tool('tools/data/make_fashion_retrieval.py', '--items', tiny_scene_items,
                      '--out', data)
    assert result.returncode == 0, result.stdout[-3000:]
    opts = [f'model.clip.model_name=local-dir:{tiny_clip_folder}', 'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1', 'train_dataloader.batch_size=4',
            'default_hooks.logger.interval=1']
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
        opts += [f'{loader}.dataset.ann_file={data}/{split}_label.txt',
                 f'{loader}.dataset.data_prefix={tiny_scene_items}',
                 f'{loader}.dataset.pipeline.1.scale=(64,64)', f'{loader}.num_workers=0']
    result = run_tool('tools/train.py', CONFIG, '--work-dir', tmp_path / 'work',
                      '--cfg-options', *opts)
    assert result.returncode == 0, result.stdout[-4000:]
    assert 'loss:' in result.stdout
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'
    result = run_tool('tools/test.py', CONFIG.replace('.py', '_adapt-krecip.py'), checkpoint,
                      '--work-dir', tmp_path / 'test', '--cfg-options', *opts,
                      'model.reranker.num_candidates=6', 'model.reranker.num_adapt=3',
                      'model.reranker.k=2')
    assert result.returncode == 0, result.stdout[-4000:]
    found = dict(re.findall(r't2i/retrieval/(\S+?): ([\d.]+)', result.stdout))
    assert set(found) == {'Recall@1', 'Recall@5', 'Recall@10', 'mAR'}
    assert float(found['Recall@10']) == pytest.approx(100.0)  # 8 images: all within 10


def test_production_pipelines_route_and_carve(tmp_path):
    """The ViT-bigG-14 config's data: a carved validation split, zero-padding to square, and
    vehicle captions routed by the attribute vocabulary's words and given the suffix."""
    import json

    import numpy as np
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS
    from PIL import Image
    root = tmp_path / 'cvpr23'
    (root / 'train/train_images').mkdir(parents=True)
    lines = []
    for i in range(20):
        Image.fromarray(np.zeros((30, 60, 3), np.uint8)).save(
            root / f'train/train_images/{i}.jpg')
        caption = 'A white sedan.' if i % 2 else 'A man in a coat.'
        lines.append(f'{i}.jpg$$' + caption)
    (root / 'train/train_label_augmented.txt').write_text('\n'.join(lines) + '\n')
    (root / 'attributes.json').write_text(json.dumps({
        'slots': {'colour': {'values': ['white'], 'fill': True, 'insert_before': ['type']},
                  'type': {'values': ['sedan'], 'fill': True}}, 'route_slots': ['type']}))
    cfg = Config.fromfile('configs/a3r/a3r_vit-bigG-14_1xb25-30e_cvpr23-retrieval.py')
    val = cfg.val_dataloader.dataset
    val.data_root = str(root)
    val.pipeline[3].routes.vehicle = str(root / 'attributes.json')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(val)
        train = cfg.train_dataloader.dataset
        train.data_root = str(root)
        assert len(dataset) == 1 and len(DATASETS.build(train)) == 19  # 5% of 20 images
        item = dataset[0]
    assert item['inputs'].shape == (3, 224, 224)
    sample = item['data_samples']
    assert len(sample.text) == 1 and len(sample.route) == 1
    if sample.route[0] == 'vehicle':
        assert sample.text[0] == ('White sedan. This image was taken by a traffic surveillance '
                                  'camera.')
    else:
        assert sample.text[0] == 'A man in a coat.'


@pytest.mark.slow
def test_retrieval_grid_tool(tiny_scene_items, tiny_clip_folder, tmp_path):
    data = tmp_path / 'retrieval'
    assert run_tool('tools/data/make_fashion_retrieval.py', '--items', tiny_scene_items,
                    '--out', data).returncode == 0
    out = tmp_path / 'grid.png'
    result = run_tool('tools/analysis/a3r_retrieval_grid.py',
                      CONFIG.replace('.py', '_adapt-krecip.py'), '--num-queries', '2',
                      '--out', out, '--cfg-options',
                      f'model.clip.model_name=local-dir:{tiny_clip_folder}',
                      f'test_dataloader.dataset.ann_file={data}/val_label.txt',
                      f'test_dataloader.dataset.data_prefix={tiny_scene_items}',
                      'test_dataloader.dataset.pipeline.1.scale=(64,64)',
                      'model.reranker.num_candidates=6', 'model.reranker.num_adapt=3',
                      'model.reranker.k=2')
    assert result.returncode == 0, result.stdout[-3000:]
    assert out.is_file() and 'R@1 stage 1' in result.stdout
    result = run_tool('tools/analysis/a3r_retrieval_grid.py', CONFIG)
    assert result.returncode != 0 and 'has no reranker' in result.stdout
