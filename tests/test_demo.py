import importlib.util
import json

from .conftest import REPO, run_tool, scene_cfg_options


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


def test_demo_chain_float_baseline_and_qdetr_through_the_stock_tools(tiny_scenes, tmp_path):
    """make demo's steps after the float training, on 16 + 8 canvases: the float detector is
    evaluated, both 4-bit students are trained from it for 2 iterations and evaluated, and the
    table and summary hold all three with the counted acceleration."""
    from mmengine.config import Config

    from .projects.test_qdetr_tools import DEMO, _save_float_model

    float_checkpoint = tmp_path / 'float.pth'
    _save_float_model(Config.fromfile(REPO / _demo_module().CONFIG).model, float_checkpoint)
    work = tmp_path / 'demo'
    done = run_tool('tools/demo.py', '--work-dir', work, '--float-checkpoint', float_checkpoint,
                    '--skip-data', '--student-iters', 2, '--results', tmp_path / 'demo.json',
                    '--cfg-options',
                    *scene_cfg_options(tiny_scenes))
    assert done.returncode == 0, done.stdout[-3000:]
    assert 'Float detector and its 4-bit students' in done.stdout
    summary = json.loads((work / 'demo_summary.json').read_text())
    assert json.loads((tmp_path / 'demo.json').read_text()) == summary  # --results
    assert summary['test'].keys() == {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'}
    students = summary['students']
    assert list(students) == ['4-bit LSQ baseline', '4-bit Q-DETR (DA + FQM / DRD)']
    assert all(s['iters'] == 2 and 'coco/bbox_mAP' in s['test'] for s in students.values())
    assert all(s['steps'] == 'calibrated (inputs mse, weights percentile)'
               for s in students.values())
    assert students['4-bit LSQ baseline']['checkpoint'].endswith('iter_2.pth')
    assert str(DEMO.relative_to(REPO)) == students['4-bit LSQ baseline']['config']
    assert 1 < summary['ops']['conventions']['bireal64']['acceleration'] < 8
    assert list((work / 'qdetr' / 'test' / 'detections' / 'teacher_vs_student').glob('*.png'))
    # the students' training ran no validation of its own: tools/test.py evaluated them
    assert 'coco/bbox_mAP' not in (work / 'qdetr' / 'train').glob('*/vis_data/scalars.json'
                                                                   ).__next__().read_text()


def test_results_hold_paths_relative_to_the_clone():
    from mmext.utils.run_logs import relative_paths
    summary = {'checkpoint': f'{REPO}/work_dirs/demo/iter_1600.pth', 'options': [
        f'load_from={REPO}/work_dirs/x.pth', '/elsewhere/y.pth'], 'mAP': 0.3}
    assert relative_paths(summary, REPO) == {'checkpoint': 'work_dirs/demo/iter_1600.pth',
                                             'options': ['load_from=work_dirs/x.pth',
                                                         '/elsewhere/y.pth'], 'mAP': 0.3}
