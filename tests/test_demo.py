import importlib.util

from .conftest import REPO


def _demo_module():
    spec = importlib.util.spec_from_file_location('demo', REPO / 'tools/demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_curve_accumulates_training_time_until_each_evaluation():
    entries = [
        dict(step=50, loss=3.0, time=0.6), dict(step=100, loss=2.0, time=0.6),
        {'step': 100, 'coco/bbox_mAP': 0.1, 'coco/bbox_mAP_50': 0.3, 'coco/bbox_mAP_75': 0.05},
        dict(step=150, loss=1.0, time=1.2),
        {'step': 150, 'coco/bbox_mAP': 0.2, 'coco/bbox_mAP_50': 0.4, 'coco/bbox_mAP_75': 0.1},
    ]
    curve = _demo_module().learning_curve(entries)
    assert [c['iteration'] for c in curve] == [100, 150]
    assert [c['train_minutes'] for c in curve] == [1.0, 2.0]  # 100 x 0.6 s, + 50 x 1.2 s
    assert curve[1]['coco/bbox_mAP'] == 0.2
