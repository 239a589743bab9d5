"""The VGG16 perceptual loss on a truncated torchvision VGG16 checkpoint the test writes."""
import pytest
import torch
from torchvision.models import vgg16

from mmext.models import VGGPerceptualLoss


@pytest.fixture(scope='module')
def vgg_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    features = vgg16(weights=None).features[:16]          # blocks 1-3 (relu3_3 at 15)
    path = tmp_path_factory.mktemp('vgg') / 'vgg16_blocks1-3.pth'
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, path)
    return path, features.eval()


def test_perceptual_loss_against_torchvision_layers(vgg_checkpoint):
    path, features = vgg_checkpoint
    loss = VGGPerceptualLoss(str(path), weights=(10, 10, 2))
    x = torch.rand(2, 1, 32, 32)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    assert loss(x, x) == 0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def blocks(t):
        out, h = [], (t.expand(-1, 3, -1, -1) - mean) / std
        for i, layer in enumerate(features):
            h = layer(h)
            if i in (3, 8, 15):
                out.append(h)
        return out

    expected = sum(w * (a - b).abs().mean() for w, a, b in zip((10, 10, 2), blocks(y), blocks(x)))
    assert torch.allclose(loss(y, x), expected, rtol=1e-5)
    pred = y.clone().requires_grad_()
    loss(pred, x).backward()
    assert pred.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())


def test_perceptual_loss_errors_name_the_fix(vgg_checkpoint, tmp_path):
    path, _ = vgg_checkpoint
    with pytest.raises(FileNotFoundError, match='vgg16-397923af.pth'):
        VGGPerceptualLoss(str(tmp_path / 'none.pth'))
    with pytest.raises(ValueError, match='not a torchvision VGG16 checkpoint'):
        VGGPerceptualLoss(str(path), weights=(10, 10, 10, 10, 2))       # blocks 4-5 missing
    with pytest.raises(ValueError, match='one per VGG16 block'):
        VGGPerceptualLoss(str(path), weights=())


def test_silhouette_image_loss_adds_the_perceptual_term(vgg_checkpoint):
    import projects.cmvdm  # noqa: F401
    from mmext.registry import MODELS
    path, _ = vgg_checkpoint
    parts = dict(type='mmext.SilhouetteTrainer',
                 decoder=dict(type='mmext.SilhouetteDecoder', num_voxels=32, out_channels=1,
                              channels=8, start_size=4, num_up=2, out_size=16, groups=4),
                 encoder=dict(type='mmext.SilhouetteEncoder', num_voxels=32, in_channels=1,
                              channels=8, num_down=2, pool_size=4, groups=4))
    plain = MODELS.build(parts)
    perceptual = dict(type='mmext.VGGPerceptualLoss', checkpoint=str(path), weights=(10, 2))
    with_vgg = MODELS.build(dict(parts, perceptual=perceptual))
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    assert torch.allclose(with_vgg.image_loss(pred, target) - plain.image_loss(pred, target),
                          with_vgg.perceptual(pred, target), atol=1e-5)
