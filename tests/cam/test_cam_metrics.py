"""The per-image CAM measures against hand computations and pytorch-grad-cam's own metrics."""
import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
from torch import nn

from mmext.cam import ClassLogitTarget
from mmext.evaluation.cam_metrics import (
    average_drop,
    deletion_insertion,
    energy_pointing_game,
    increase_in_confidence,
)


def test_average_drop_and_increase_by_hand():
    full, explained = torch.tensor([0.5, 0.8, 0.2]), torch.tensor([0.25, 0.9, 0.2])
    assert torch.allclose(average_drop(full, explained), torch.tensor([50.0, 0.0, 0.0]))
    assert torch.equal(increase_in_confidence(full, explained), torch.tensor([0.0, 100.0, 0.0]))


def test_average_drop_and_increase_agree_with_grad_cam():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 5), nn.Softmax(-1))  # outputs probabilities
    images, cams = torch.randn(6, 3, 16, 16), np.random.rand(6, 16, 16).astype(np.float32)
    targets = [ClassLogitTarget(k % 5) for k in range(6)]
    with torch.no_grad():
        full = torch.stack([t(o) for t, o in zip(targets, model(images))])
        explained = torch.stack([t(o) for t, o in zip(
            targets, model(images * torch.from_numpy(cams)[:, None]))])
    drop = DropInConfidence()(images, cams, targets, model)  # max(0, Y - O), not relative
    assert np.allclose(average_drop(full, explained).numpy() * full.numpy() / 100, drop,
                       atol=1e-6)
    increase = IncreaseInConfidence()(images, cams, targets, model)
    assert np.array_equal(increase_in_confidence(full, explained).numpy() / 100, increase)


def test_deletion_and_insertion_by_hand():
    image = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    saliency = torch.tensor([[4.0, 3.0], [2.0, 1.0]])  # the pixel of value 1 is the most salient
    out = deletion_insertion(lambda x: x.sum((1, 2, 3)), image, saliency, torch.zeros_like(image),
                             steps=4)
    assert np.allclose(out['deletion'], [10, 9, 7, 4, 0])
    assert np.allclose(out['insertion'], [0, 1, 3, 6, 10])
    assert out['deletion_auc'] == pytest.approx(6.25)
    assert out['insertion_auc'] == pytest.approx(3.75)
    with pytest.raises(ValueError, match='do not match'):
        deletion_insertion(lambda x: x.sum(), image, saliency[:1], image)


def test_energy_pointing_game_by_hand():
    saliency = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 3.0], [0.0, 1.0]]])
    mask = torch.tensor([[[True, False], [False, False]], [[False, True], [False, False]]])
    assert torch.allclose(energy_pointing_game(saliency, mask), torch.tensor([0.25, 0.75]))
    with pytest.raises(ValueError, match='differ'):
        energy_pointing_game(saliency, mask[:, :1])


def test_pointing_game_and_deletion_agree_with_quantus():
    """Our energy pointing game is Quantus's Relevance Mass Accuracy; our deletion curve after
    its first point is Quantus's Pixel Flipping with the same baseline (black = 0 here)."""
    import quantus  # a dev dependency (make install)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 5)).eval()
    images, maps = torch.rand(2, 1, 8, 8), torch.rand(2, 8, 8)
    images[:, :, 0, 0] = 0  # black is the minimum, 0
    masks = torch.rand(2, 8, 8) > 0.5
    labels = np.array([1, 3])
    common = dict(model=model, x_batch=images.numpy(), y_batch=labels,
                  a_batch=maps[:, None].numpy(), device='cpu', channel_first=True)
    mass = quantus.RelevanceMassAccuracy(normalise=False, abs=False, disable_warnings=True)(
        s_batch=masks[:, None].numpy().astype(float), **common)
    assert np.allclose(energy_pointing_game(maps, masks).numpy(), mass, atol=1e-6)
    flipping = quantus.PixelFlipping(features_in_step=16, perturb_baseline='black',
                                     normalise=False, abs=False, disable_warnings=True)
    curves = np.array(flipping(softmax=True, **common))  # (2, 4): after 16, 32, 48, 64 pixels
    for i, label in enumerate(labels):
        ours = deletion_insertion(lambda x, k=int(label): model(x).softmax(-1)[:, k], images[i],
                                  maps[i], torch.zeros_like(images[i]), steps=4)
        assert np.allclose(ours['deletion'][1:], curves[i], atol=1e-6)
