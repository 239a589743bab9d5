"""Post-training quantization and calibrated QAT through the stock tools on a small set:
tools/deploy/calibrate.py, tools/test.py (PTQ by the hook) and tools/train.py."""
import re

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from ..conftest import DEMO_CONFIG, REPO, run_tool, scene_cfg_options

W4A4 = REPO / 'configs/demo/conditional-detr_mobilenetv2-s16_w4a4_fashion-scenes.py'


def _float_checkpoint(path) -> None:
    """The float demo detector with random weights, written by the test."""
    model_cfg = Config.fromfile(DEMO_CONFIG).model
    model_cfg.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)


def _map(stdout: str) -> str:
    return re.search(r'coco/bbox_mAP: ([0-9.-]+)', stdout).group(1)


def test_ptq_by_the_tool_and_by_the_hook_agree_and_qat_starts_from_it(tiny_scenes, tmp_path):
    float_ckpt, calibrated = tmp_path / 'float.pth', tmp_path / 'calibrated.pth'
    _float_checkpoint(float_ckpt)
    options = scene_cfg_options(tiny_scenes) + ['randomness.seed=0',
                                                'model.quant.calibration.batches=4']
    tool = run_tool('tools/deploy/calibrate.py', W4A4, float_ckpt, '--out', calibrated,
                    '--work-dir', tmp_path / 'calibrate', '--cfg-options', *options)
    assert tool.returncode == 0, tool.stdout[-3000:]
    # the float checkpoint lacks the quantizer state: one line, not a key per quantizer
    assert re.search(r'no quantizer state for (\d+) of \1 LSQ / LSQ\+ quantizers', tool.stdout)
    assert 'a_quantizer.scale' not in tool.stdout
    assert 'over 4 batches' in tool.stdout
    state = torch.load(calibrated)
    assert state['meta']['calibration']['batches'] == 4
    assert state['state_dict']['encoder.layers.0.ffn.layers.1.a_quantizer.init_count'] == 10

    # tools/test.py on the calibrated checkpoint evaluates it as it is ...
    tested = run_tool('tools/test.py', W4A4, calibrated, '--work-dir', tmp_path / 'test',
                      '--cfg-options', *options)
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert 'quantizer calibration' not in tested.stdout
    # ... and on the float checkpoint calibrates first (PTQ), on the same batches: same mAP
    ptq = run_tool('tools/test.py', W4A4, float_ckpt, '--work-dir', tmp_path / 'ptq',
                   '--cfg-options', *options)
    assert ptq.returncode == 0, ptq.stdout[-3000:]
    assert 'quantizer calibration: weights' in ptq.stdout
    assert _map(ptq.stdout) == _map(tested.stdout)

    # QAT from the calibrated checkpoint does not calibrate again
    qat = run_tool('tools/train.py', W4A4, '--work-dir', tmp_path / 'qat', '--cfg-options',
                   *options, f'load_from={calibrated}')
    assert qat.returncode == 0, qat.stdout[-3000:]
    assert 'quantizer calibration' not in qat.stdout and 'no quantizer state' not in qat.stdout
    trained = torch.load(tmp_path / 'qat' / 'iter_2.pth')['state_dict']
    key = 'encoder.layers.0.ffn.layers.1.a_quantizer.scale'
    torch.testing.assert_close(trained[key], state['state_dict'][key], rtol=0.05, atol=0)


def test_calibrate_tool_refuses_configs_without_calibration(tiny_scenes, tmp_path):
    float_ckpt = tmp_path / 'float.pth'
    _float_checkpoint(float_ckpt)
    result = run_tool('tools/deploy/calibrate.py', W4A4, float_ckpt, '--work-dir', tmp_path,
                      '--cfg-options', *scene_cfg_options(tiny_scenes),
                      'model.quant.calibration=None')
    assert result.returncode != 0
    assert 'data-free LSQ initialisation' in result.stdout
