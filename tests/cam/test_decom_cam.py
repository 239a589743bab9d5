"""Decom-CAM on pytorch-grad-cam's API: the SVD step, the sign rule, saliency where the evidence
is, hooks released, the baselines by name, CLIP text targets and the errors for bad input."""
import numpy as np
import pytest
import torch
from torch import nn

from mmext.cam import (
    CAM_METHODS,
    GRAD_CAM_BASELINES,
    ClassLogitTarget,
    CLIPImageModel,
    CLIPTextTarget,
    DecomCAM,
    decompose_activations,
    resolve_target_layers,
    token_reshape_transform,
)


def test_sub_maps_are_orthogonal_and_reconstruct_the_weighted_activations():
    torch.manual_seed(0)
    activations, gradients = torch.randn(12, 5, 6), torch.randn(12, 5, 6)
    parts = decompose_activations(activations, gradients, num_channels=8, num_components=30)
    alpha = gradients.mean((1, 2))
    assert torch.equal(parts.channels.sort().values, torch.topk(alpha, 8).indices.sort().values)
    flat = parts.maps.flatten(1)  # (n, h*w) rows s_i u_i
    gram = flat @ flat.T
    assert torch.allclose(gram, torch.diag(torch.diag(gram)), atol=1e-4)  # orthogonal
    assert torch.allclose(torch.diag(gram), parts.singular ** 2, atol=1e-4)
    # all components: sum_i (s_i u_i) v_i^T is the centred weighted matrix X_c
    assert torch.allclose(flat.T @ parts.right, parts.centred, atol=1e-4)
    x = (activations[parts.channels] * alpha[parts.channels, None, None]).flatten(1).T
    assert torch.allclose(parts.centred, x - x.mean(0), atol=1e-5)


def test_sign_rule_points_every_sub_map_along_the_grad_cam_map():
    torch.manual_seed(1)
    activations, gradients = torch.rand(16, 7, 7), torch.randn(16, 7, 7) + 0.3
    parts = decompose_activations(activations, gradients, num_components=5)
    alpha = gradients.mean((1, 2))
    keep = parts.channels
    grad_cam = torch.relu((activations[keep] * alpha[keep, None, None]).sum(0))
    assert ((parts.maps * grad_cam).flatten(1).sum(1) >= 0).all()
    flipped = decompose_activations(activations, gradients, num_components=5)
    assert torch.allclose(flipped.maps, parts.maps)  # deterministic


class RedDetector(nn.Module):
    """Channel 0 of a fixed 1x1 convolution responds to red (R - (G + B) / 2), the other 7 are
    random; class k's score is the largest post-ReLU activation of channel k. On a grey image
    with one red square, the evidence for class 0 sits in the square and nowhere else."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        conv = nn.Conv2d(3, 8, 1)
        with torch.no_grad():
            conv.weight[0, :, 0, 0] = torch.tensor([1.0, -0.5, -0.5])
            conv.bias[0] = 0
        self.features = nn.Sequential(conv, nn.ReLU())

    def forward(self, x):
        return self.features(x).amax((2, 3))


def red_square_images(batch=2, size=32):
    grey = torch.rand(batch, 1, size, size).expand(batch, 3, size, size).clone()
    grey[:, 0, 4:12, 6:14] = 1.0  # red
    grey[:, 1:, 4:12, 6:14] = 0.0
    return grey


def test_saliency_peaks_where_the_evidence_is():
    model = RedDetector()
    images = red_square_images()
    with DecomCAM(model, [model.features[1]], num_components=4, blur_sigma=3) as cam:
        result = cam.explain(images, [ClassLogitTarget(0)] * 2)
    saliency = result['saliency']
    assert saliency.shape == (2, 32, 32) and result['sub_maps'].shape[:2] == (2, 4)
    # one channel with a non-zero weight: rank one; the other rows are empty, weight 0
    assert (result['weights'][:, 1:] == 0).all() and (result['sub_maps'][:, 1:] == 0).all()
    inside = np.zeros((32, 32), bool)
    inside[4:12, 6:14] = True
    for s in saliency:
        assert s[inside].mean() > 3 * s[~inside].mean()
        y, x = np.unravel_index(s.argmax(), s.shape)
        assert inside[y, x]


def test_a_batch_of_images_with_different_ranks():
    """Activations affine in the pixel colour: a grey image with one red square spans 2
    colour directions (centred rank 2), a random colour image 3; both stack in one batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 2))
    images = torch.cat([red_square_images(1), torch.rand(1, 3, 32, 32)])
    with DecomCAM(model, [model[0]], num_components=5, blur_sigma=3) as cam:
        result = cam.explain(images, [ClassLogitTarget(1)] * 2)
    assert result['sub_maps'].shape == (2, 5, 32, 32) and result['weights'].shape == (2, 5)
    filled = np.abs(result['sub_maps']).reshape(2, 5, -1).max(-1) > 0
    assert filled[0].tolist() == [True, True, False, False, False]
    assert filled[1].tolist() == [True, True, True, False, False]
    assert (result['weights'][~filled] == 0).all()


@pytest.mark.parametrize('weighting', ['reference', 'released'])
def test_both_weightings_give_normalised_maps(weighting):
    model = RedDetector()
    with DecomCAM(model, [model.features[0]], num_components=3, blur_sigma=3,
                  weighting=weighting) as cam:
        result = cam.explain(red_square_images(1), [ClassLogitTarget(0)])
    assert result['saliency'].min() >= 0 and result['saliency'].max() <= 1 + 1e-6
    assert result['weights'].max() == pytest.approx(1.0)


def test_hooks_are_released():
    model = RedDetector()
    layer = model.features[0]
    before = len(layer._forward_hooks)
    for _ in range(3):
        with DecomCAM(model, [layer], num_components=2, blur_sigma=2) as cam:
            cam(torch.rand(1, 3, 32, 32), [ClassLogitTarget(0)])
            assert len(layer._forward_hooks) > before
        assert len(layer._forward_hooks) == before


def test_grad_cam_baselines_run_beside_it_by_name():
    model = RedDetector()
    layer = [model.features[0]]
    images = torch.rand(2, 3, 32, 32)
    assert set(GRAD_CAM_BASELINES) | {'DecomCAM'} <= set(CAM_METHODS.module_dict)
    for name in ['DecomCAM', *GRAD_CAM_BASELINES]:
        method = CAM_METHODS.get(name)
        if name == 'AblationCAM':
            continue  # replaces the layer by a pytorch-grad-cam AblationLayer: needs its own API
        with method(model=model, target_layers=layer) as cam:
            if hasattr(cam, 'batch_size'):
                cam.batch_size = 4
            maps = cam(images, [ClassLogitTarget(0)] * 2)
        assert maps.shape == (2, 32, 32), name


def test_token_reshape_and_clip_text_targets(tiny_clip_folder):
    from mmext.clip import OpenCLIPModel
    clip = OpenCLIPModel(f'local-dir:{tiny_clip_folder}')
    model = CLIPImageModel(clip)
    layers = resolve_target_layers(model, ['visual.transformer.resblocks.1.ln_1'])
    targets = CLIPTextTarget.from_prompts(clip, ['a photo of a bag.', 'a photo of a shoe.'])
    with DecomCAM(model, layers, reshape_transform=token_reshape_transform(1),
                  num_components=3, blur_sigma=4) as cam:
        result = cam.explain(torch.randn(2, 3, 64, 64), targets)
    assert result['saliency'].shape == (2, 64, 64) and result['sub_maps'].shape[1] <= 3
    tokens = torch.arange(11 * 5.).reshape(1, 11, 5)  # a class and a distillation token + 3 x 3
    grid = token_reshape_transform(num_prefix_tokens=2)(tokens)
    assert grid.shape == (1, 5, 3, 3) and torch.equal(grid[0, :, 0, 1], tokens[0, 3])
    assert token_reshape_transform(2, grid=(3, 4))(torch.zeros(1, 14, 5)).shape == (1, 5, 3, 4)


def test_bad_input_names_the_problem(tiny_clip_folder):
    model = RedDetector()
    with pytest.raises(ValueError, match="'features.9' does not exist.*features.0"):
        resolve_target_layers(model, ['features.9'])
    with DecomCAM(model, [model.features[0]]) as cam, \
            pytest.raises(ValueError, match=r'\(B, C, H, W\).*image\[None\]'):
        cam(torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match='needs a CLIP model'):
        CLIPTextTarget.from_prompts(model, ['a bag'])
    target = CLIPTextTarget(torch.randn(32))
    with pytest.raises(ValueError, match='a text target needs a CLIP image model'):
        target(model(torch.rand(1, 3, 32, 32)))
    with pytest.raises(ValueError, match='do not form a'):
        token_reshape_transform(1)(torch.zeros(1, 1 + 10, 4))
    with pytest.raises(ValueError, match="weighting must be 'reference' or 'released'"):
        DecomCAM(model, [model.features[0]], weighting='journal')
