"""Q-DETR configs through the stock tools (tools/train.py, tools/test.py) on a small set."""
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import DefaultScope

from ..conftest import REPO, run_tool, scene_cfg_options

DEMO = REPO / 'configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py'


def _save_float_model(model_cfg, path) -> None:
    """A float detector's checkpoint, written by the test (random weights)."""
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)


def test_demo_qdetr_trains_with_its_teacher_then_tests_without(tiny_scenes, tmp_path):
    float_checkpoint = tmp_path / 'float.pth'
    _save_float_model(Config.fromfile(DEMO.parent.parent / 'demo' / (
        'conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py')).model,
        float_checkpoint)
    options = scene_cfg_options(tiny_scenes) + [
        f'model.teacher.checkpoint={float_checkpoint}', f'load_from={float_checkpoint}']
    train = run_tool('tools/train.py', DEMO, '--work-dir', tmp_path / 'qdetr', '--cfg-options',
                     *options)
    assert train.returncode == 0, train.stdout[-3000:]
    assert 'loss_drd' in train.stdout and 'coco/bbox_mAP' in train.stdout
    checkpoint = tmp_path / 'qdetr' / 'iter_2.pth'
    keys = torch.load(checkpoint)['state_dict']
    assert 'decoder.layers.0.cross_attn.attention.q_transform.gamma' in keys  # DA saved
    assert not any(k.startswith(('student.', 'teacher')) for k in keys)
    # tools/test.py builds no teacher: a missing teacher checkpoint does not matter there
    test = run_tool('tools/test.py', DEMO, checkpoint, '--work-dir', tmp_path / 'test',
                    '--out', tmp_path / 'results.pkl', '--cfg-options',
                    *scene_cfg_options(tiny_scenes), f"model.teacher.checkpoint={tmp_path / 'gone.pth'}")
    assert test.returncode == 0, test.stdout[-3000:]
    tested_map = re.search(r'coco/bbox_mAP: ([0-9.-]+)', test.stdout).group(1)
    # mmdet's own analysis tools read the config and the predictions (the clone on PYTHONPATH,
    # as for mmdet's projects/); eval_metric.py re-evaluates them to the same mAP
    import mmdet
    tools = Path(mmdet.__file__).parent / '.mim/tools/analysis_tools'
    evaluated = run_tool(tools / 'eval_metric.py', DEMO, tmp_path / 'results.pkl',
                         '--cfg-options', *scene_cfg_options(tiny_scenes),
                         env=dict(PYTHONPATH=str(REPO)))
    assert evaluated.returncode == 0, evaluated.stdout[-3000:]
    assert f"'coco/bbox_mAP': {float(tested_map)}" in evaluated.stdout
    shown = run_tool('tools/test.py', DEMO, checkpoint, '--work-dir', tmp_path / 'shown',
                     '--show-dir', 'shown', '--cfg-options', *scene_cfg_options(tiny_scenes),
                     f'model.teacher.checkpoint={float_checkpoint}')
    assert shown.returncode == 0, shown.stdout[-3000:]
    pairs = sorted((tmp_path / 'shown' / 'shown' / 'teacher_vs_student').glob('*.png'))
    assert len(pairs) == 8  # the 8 val canvases, up to max_images=8
    import mmcv
    assert mmcv.imread(str(pairs[0])).shape == (128, 2 * 128 + 4, 3)  # student | teacher
    # a missing teacher checkpoint stops training with a message that says what to do
    missing = run_tool('tools/train.py', DEMO, '--work-dir', tmp_path / 'missing',
                       '--cfg-options', *scene_cfg_options(tiny_scenes),
                       f"model.teacher.checkpoint={tmp_path / 'gone.pth'}", 'load_from=None')
    # (listed before the runner is built, with the key to change: mmext/utils/data_check.py)
    assert missing.returncode != 0 and 'names checkpoints that are not here' in missing.stdout
    assert f"model.teacher.checkpoint: {tmp_path / 'gone.pth'}" in missing.stdout


def test_demo_qdetr_trains_on_the_one_pass_quantizers(tiny_scenes, tmp_path):
    """``quant.fused=True`` (README, "Faster QAT on a CPU"): the compiled LSQ / LSQ+ passes run
    under calibration, distillation and the stock runner, and the loss stays finite."""
    from mmext.quant.kernels import lowbit_ops
    if lowbit_ops() is None:
        pytest.skip('no C++ compiler for the low-bit kernels')
    float_checkpoint = tmp_path / 'float.pth'
    _save_float_model(Config.fromfile(DEMO.parent.parent / 'demo' / (
        'conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py')).model,
        float_checkpoint)
    options = scene_cfg_options(tiny_scenes) + [
        f'model.teacher.checkpoint={float_checkpoint}', f'load_from={float_checkpoint}',
        'model.quant.fused=True']
    train = run_tool('tools/train.py', DEMO, '--work-dir', tmp_path / 'fused', '--cfg-options',
                     *options)
    assert train.returncode == 0, train.stdout[-3000:]
    assert 'loss_drd' in train.stdout and 'loss: nan' not in train.stdout


def test_r50_4bit_coco_config_runs_two_iterations(tiny_scenes, tmp_path):
    teacher_config = 'mmdet::detr/detr_r18_8xb2-500e_coco.py'  # 6 + 6 layers, as the student
    teacher_checkpoint = tmp_path / 'teacher.pth'
    _save_float_model(get_config(teacher_config).model, teacher_checkpoint)
    ann = tiny_scenes / 'annotations'
    options = ['model.detector.backbone.init_cfg=None', 'load_from=None',
               'model.detector.bbox_head.num_classes=10',
               f'model.teacher.config={teacher_config}',
               f'model.teacher.checkpoint={teacher_checkpoint}',
               'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
               f'val_evaluator.ann_file={ann}/instances_val.json']
    for loader, split, count in (('train_dataloader', 'train', 4), ('val_dataloader', 'val', 2)):
        options += [f'{loader}.dataset.type=mmext.FashionScenesDataset',  # COCO + its classes
                    f'{loader}.dataset.data_root={tiny_scenes}/',
                    f'{loader}.dataset.ann_file=annotations/instances_{split}.json',
                    f'{loader}.dataset.data_prefix.img={split}/images/',
                    f'{loader}.dataset.indices={count}', f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False', f'{loader}.batch_size=2']
    train = run_tool('tools/train.py', REPO / 'configs/qdetr/r50_4bit.py', '--work-dir',
                     tmp_path / 'r50', '--cfg-options', *options)
    assert train.returncode == 0, train.stdout[-3000:]
    assert 'loss_drd' in train.stdout and 'Epoch(train) [1][2/2]' in train.stdout
    assert 'coco/bbox_mAP' in train.stdout
