import importlib.util
import json

from .conftest import REPO


def _demo_module():
    spec = importlib.util.spec_from_file_location('demo', REPO / 'tools/demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_curve_accumulates_training_time_until_each_evaluation():
    val = {'coco/bbox_mAP': 0.1, 'coco/bbox_mAP_50': 0.3, 'coco/bbox_mAP_75': 0.05, 'step': 0}
    entries = [
        dict(step=50, loss=3.0, time=0.6), dict(step=100, loss=2.0, time=0.6), val,
        dict(step=150, loss=1.0, time=1.2), dict(val, **{'coco/bbox_mAP': 0.2}),
    ]
    curve = _demo_module().learning_curve(entries)
    assert [c['iteration'] for c in curve] == [100, 150]
    assert [c['train_minutes'] for c in curve] == [1.0, 2.0]  # 100 x 0.6 s, + 50 x 1.2 s
    assert [c['coco/bbox_mAP'] for c in curve] == [0.1, 0.2]


def test_test_metrics_come_from_the_timestamped_json(tmp_path):
    run = tmp_path / '20261127_094022'
    (run / 'vis_data').mkdir(parents=True)
    (run / 'vis_data' / 'config.json').write_text('{}')
    (run / '20261127_094022.json').write_text(json.dumps(
        {'coco/bbox_mAP': 0.327, 'coco/bbox_mAP_50': 0.575, 'coco/bbox_mAP_75': 0.335,
         'time': 0.9}))
    assert _demo_module().read_test_metrics(tmp_path) == {
        'coco/bbox_mAP': 0.327, 'coco/bbox_mAP_50': 0.575, 'coco/bbox_mAP_75': 0.335}
