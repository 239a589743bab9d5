"""The Fréchet distance metric: clean-fid's Inception route on a stand-in network file the test
writes (same interface), the formula against a hand case, the named judge-feature route, and
the errors that name the missing file or argument."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mmext.evaluation import FrechetDistanceMetric, Judge, frechet_distance


class _Layers(nn.Module):
    """(B, 3, 299, 299) -> (B, 2048, 1, 1), like the Inception pool features."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.proj = nn.Linear(108, 2048)

    def forward(self, x):
        return self.proj(self.pool(x).flatten(1))[:, :, None, None]


class _InceptionStandIn(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _Layers()

    def forward(self, x, return_features: bool = False):
        return self.layers(x)


@pytest.fixture
def inception_folder(tmp_path):
    torch.manual_seed(0)
    net = _InceptionStandIn()
    torch.jit.script(net).save(str(tmp_path / 'inception-2015-12-05.pt'))
    return tmp_path, net


def test_frechet_distance_against_a_hand_case():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    shift = np.array([1.0, -2.0, 0, 0, 0.5, 0])
    # equal covariances: the distance is the squared distance of the means
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), abs=1e-6)
    # isotropic Gaussians: |mu1 - mu2|^2 + d (s1 - s2)^2 for standard deviations s1, s2
    b = rng.normal(size=(20000, 3)) * 2.0
    c = rng.normal(size=(20000, 3)) * 0.5
    assert frechet_distance(b, c) == pytest.approx(3 * 1.5 ** 2, rel=0.05)


def test_fid_uses_clean_resizing_and_the_given_inception_file(inception_folder):
    folder, net = inception_folder
    metric = FrechetDistanceMetric(inception=str(folder))
    torch.manual_seed(1)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    fake = (real + 0.3 * torch.randn_like(real)).clamp(-1, 1)
    metric.process({}, [dict(pred=f[None], gt=r) for f, r in zip(fake, real)])
    out = metric.compute_metrics(metric.results)

    def features(images):   # clean-fid 'clean': uint8, PIL bicubic in float, [0, 255]
        rows = []
        for im in images:
            grey = ((im[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
            big = np.asarray(Image.fromarray(grey.astype(np.float32), mode='F').resize(
                (299, 299), Image.BICUBIC)).clip(0, 255)
            rows.append(torch.from_numpy(np.repeat(big[None], 3, 0)))
        with torch.no_grad():
            return net.layers((torch.stack(rows) - 128) / 128).flatten(1).numpy()

    ours = np.concatenate([r['fake'] for r in metric.results])
    assert np.allclose(ours, features(fake), rtol=1e-4, atol=1e-4)
    assert np.allclose(np.concatenate([r['real'] for r in metric.results]), features(real),
                       rtol=1e-4, atol=1e-4)
    assert out['fid_inception2048_clean'] > 0      # the formula: the hand case above
    assert out['fid_inception2048_clean_num_images'] == 4


def test_named_feature_distance_from_a_judge_layer():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.Tanh(), nn.Linear(5, 3))
    judge = Judge(fn=model, name='toy')
    judge.model = model                     # a judge whose modules can be named
    metric = FrechetDistanceMetric(judge=judge, judge_layer='2', feature_name='toy-tanh5')
    torch.manual_seed(0)
    images = torch.rand(6, 1, 4, 4)
    metric.process({}, [dict(pred=im[None], gt=im) for im in images])
    out = metric.compute_metrics(metric.results)
    assert set(out) == {'fd_toy-tanh5', 'fd_toy-tanh5_num_images'}
    assert abs(out['fd_toy-tanh5']) < 1e-6                # identical sets
    with pytest.raises(ValueError, match="no module 'head'"):
        judge.features(images, 'head')


def test_frechet_metric_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='inception-2015-12-05.pt'):
        FrechetDistanceMetric(inception=str(tmp_path))
    with pytest.raises(ValueError, match='exactly one'):
        FrechetDistanceMetric()
    with pytest.raises(ValueError, match='feature_name'):
        FrechetDistanceMetric(judge=Judge(fn=lambda x: x, name='x'), judge_layer='a')
    with pytest.raises(ValueError, match='judge features need'):
        Judge(fn=lambda x: x).features(torch.zeros(1, 1, 2, 2), 'a')
