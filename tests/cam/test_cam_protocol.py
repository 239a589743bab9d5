"""The Decom-CAM protocol: the stratified metric by hand, and the wrapper model through
tools/test.py on the Fashion-MNIST demo classifier (a checkpoint the test writes)."""
import re

import numpy as np
import pytest
import torch

from mmext.cam import StratifiedCAMMetric
from tests.conftest import run_tool

PROTOCOL = 'configs/decomcam/decomcam_resnet18-cifar_fashion-mnist.py'


class _Sample(dict):
    def get(self, key, default=None):
        return super().get(key, default)


def test_stratified_metric_by_hand():
    metric = StratifiedCAMMetric(num_bins=2)
    # 4 images of class 0: probabilities 0.1, 0.2 (top-1 wrong), 0.7, 0.9 (right); drops 10..40
    samples = []
    for prob, drop in ((0.1, 10.0), (0.2, 20.0), (0.7, 30.0), (0.9, 40.0)):
        score = torch.tensor([prob, 1 - prob])
        samples.append(_Sample(cam_measures=dict(average_drop=drop, increase_in_confidence=0.0,
                                                 deletion_auc=0.1, insertion_auc=0.5),
                               pred_score=score, gt_label=torch.tensor([0])))
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    assert out['correct/images'] == 2 and out['wrong/images'] == 2
    assert out['correct/average_drop'] == pytest.approx(35.0)
    assert out['wrong/average_drop'] == pytest.approx(15.0)
    assert out['q1/average_drop'] == pytest.approx(15.0)  # the two least confident
    assert out['q2/average_drop'] == pytest.approx(35.0)
    assert out['macro_accuracy/average_drop'] == pytest.approx(25.0)
    assert 'correct/energy_pointing_game' not in out  # no masks, no pointing game
    with pytest.raises(KeyError, match='cam_measures'):
        metric.process(None, [_Sample(pred_score=torch.ones(2), gt_label=torch.tensor([0]))])


@pytest.mark.slow
def test_protocol_through_tools_test(classifier, tmp_path):
    _, checkpoint, _ = classifier
    opts = ['test_dataloader.dataset.indices=12', 'test_dataloader.batch_size=4',
            'test_dataloader.num_workers=0', 'model.steps=4', 'model.cam.num_components=3']
    result = run_tool('tools/test.py', PROTOCOL, checkpoint, '--work-dir', tmp_path,
                      '--cfg-options', *opts)
    assert result.returncode == 0, result.stdout[-4000:]
    found = dict(re.findall(r'cam/(\S+?): (-?[\d.]+|nan)', result.stdout))
    assert float(found['q1/images']) + float(found['q5/images']) > 0
    assert float(found['correct/images']) + float(found['wrong/images']) == 12
    for key in ('macro_confidence/average_drop', 'macro_accuracy/insertion_auc'):
        assert np.isfinite(float(found[key])), key
    assert 0 <= float(found['macro_confidence/average_drop']) <= 100
    # a grad-cam baseline on the same classifier and the same images
    result = run_tool('tools/test.py', PROTOCOL.replace('decomcam_', 'gradcam_'), checkpoint,
                      '--work-dir', tmp_path / 'gc', '--cfg-options', *opts[:-1])
    assert result.returncode == 0, result.stdout[-4000:]
    baseline = dict(re.findall(r'cam/(\S+?): (-?[\d.]+|nan)', result.stdout))
    assert baseline['correct/images'] == found['correct/images']  # the same subsets


def test_bad_protocol_configs_are_named():
    from mmengine.config import Config

    from mmext.cam import CAMEvalModel
    cfg = Config.fromfile(PROTOCOL).model
    with pytest.raises(ValueError, match="'MagicCAM' is not a CAM method"):
        CAMEvalModel(classifier=cfg.classifier, cam=dict(type='MagicCAM', target_layers=['x']))
    with pytest.raises(ValueError, match="'backbone.layer9' does not exist"):
        CAMEvalModel(classifier=cfg.classifier,
                     cam=dict(type='DecomCAM', target_layers=['backbone.layer9']))
    with pytest.raises(ValueError, match='needs target_layers'):
        CAMEvalModel(classifier=cfg.classifier, cam=dict(type='DecomCAM'))
    with pytest.raises(ValueError, match=r"GradCAM does not take \['num_components'\]"):
        CAMEvalModel(classifier=cfg.classifier, cam=dict(
            type='GradCAM', target_layers=['backbone.layer4'], num_components=3))


ITEMS_PROTOCOL = 'configs/decomcam/decomcam_resnet18-w32_fashion-scene-items.py'


@pytest.mark.slow
def test_items_protocol_reports_the_pointing_game(tiny_scene_items, tmp_path):
    """Single-item canvases carry the item mask: the energy pointing game is measured."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    classifier = MODELS.build(Config.fromfile(ITEMS_PROTOCOL).model.classifier)
    checkpoint = tmp_path / 'classifier.pth'
    torch.save({'state_dict': classifier.state_dict()}, checkpoint)
    opts = [f'test_dataloader.dataset.data_root={tiny_scene_items}',
            'test_dataloader.batch_size=4', 'test_dataloader.num_workers=0', 'model.steps=4',
            'model.cam.num_components=3']
    result = run_tool('tools/test.py', ITEMS_PROTOCOL, checkpoint, '--work-dir', tmp_path,
                      '--cfg-options', *opts)
    assert result.returncode == 0, result.stdout[-4000:]
    found = dict(re.findall(r'cam/(\S+?): (-?[\d.]+|nan)', result.stdout))
    assert float(found['correct/images']) + float(found['wrong/images']) == 8
    assert 0 <= float(found['macro_confidence/energy_pointing_game']) <= 1
