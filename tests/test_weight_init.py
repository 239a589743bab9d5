import pytest
import torch
import torchvision
from mmdet.models.backbones import MobileNetV2

from mmext.models import map_state_dict_by_order


def test_torchvision_mobilenet_v2_loads_into_mmdet_backbone_exactly(tmp_path):
    """A checkpoint the test writes (random torchvision MobileNetV2) gives mmdet's backbone the
    very same features as torchvision's model."""
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2().eval()
    for m in reference.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / 'mobilenet_v2.pth'
    torch.save(reference.state_dict(), path)

    backbone = MobileNetV2(out_indices=(4, 7), init_cfg=dict(
        type='mmext.TorchvisionPretrained', checkpoint=str(path)))
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        stride16, last = backbone(x)
        expected = reference.features(x)
        expected16 = reference.features[:14](x)
    torch.testing.assert_close(last, expected)
    torch.testing.assert_close(stride16, expected16)


def test_wrong_architecture_is_refused(tmp_path):
    resnet = torchvision.models.resnet18().state_dict()
    target = MobileNetV2().state_dict()
    with pytest.raises(ValueError, match='not the same architecture'):
        map_state_dict_by_order(resnet, target, drop_prefixes=('fc.', ))
