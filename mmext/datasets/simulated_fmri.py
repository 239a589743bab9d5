"""Simulated fMRI for the CMVDM demo: a fixed, seeded encoding model turns Fashion-MNIST stimuli
into voxel responses. It is a simulator of the *shape* of the problem (few thousand noisy voxels,
some tuned to local image regions, some to high-level features; training trials single, test
trials averaged over repeats as in GOD), not a model of a brain.

Voxel ``v`` of the ``num_pixel_voxels`` pixel voxels has a Gaussian receptive field (centre
uniform over the 32 x 32 stimulus, width uniform in ``rf_sigma``) and responds with the
field-weighted sum of the stimulus's intensities. Each of the ``num_feature_voxels`` feature
voxels responds with a random projection (Gaussian weights) of the stimulus's 1280-d
global-pooled features from the real ImageNet MobileNetV2 (torchvision's weights, stimulus
replicated to RGB at 112 px). Every voxel's signal is standardised over the training stimuli and
gets independent Gaussian noise of variance ``1 / snr`` per trial; a test response is the mean of
``test_repeats`` trials.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .fashion_mnist import load_fashion_mnist

STIMULUS_SIZE = 32


@dataclass
class SimulatorConfig:
    """What the simulated data set is made of; saved beside the arrays."""
    num_train: int = 4000          # stimuli from Fashion-MNIST train (the first, in a seeded order)
    num_val: int = 400             # carved from the training stimuli, for model selection
    num_test: int = 200            # stimuli from Fashion-MNIST test, 20 per class
    num_pixel_voxels: int = 2048
    num_feature_voxels: int = 2048
    rf_sigma: tuple[float, float] = (1.5, 5.0)
    snr: float = 0.1               # signal variance / noise variance of one trial
    test_repeats: int = 10         # test trials averaged (GOD: 35)
    seed: int = 0


def pad_stimuli(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 Fashion-MNIST -> (N, 32, 32) with a 2-pixel black border."""
    return np.pad(images, ((0, 0), (2, 2), (2, 2)))


class EncodingModel:
    """The fixed voxel encoding model of :class:`SimulatorConfig` (its seed fixes the receptive
    fields and the projection; the noise is drawn by :meth:`responses`)."""

    def __init__(self, cfg: SimulatorConfig, feature_fn=None):
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        n, size = cfg.num_pixel_voxels, STIMULUS_SIZE
        centres = torch.rand(n, 2, generator=gen) * (size - 1)
        lo, hi = cfg.rf_sigma
        sigma = lo + (hi - lo) * torch.rand(n, 1, generator=gen)
        coords = torch.arange(size, dtype=torch.float32)
        ys, xs = torch.meshgrid(coords, coords, indexing='ij')
        grid = torch.stack([ys.flatten(), xs.flatten()], 1)                  # (P, 2)
        dist2 = ((grid[None] - centres[:, None]) ** 2).sum(-1)               # (n, P)
        fields = torch.exp(-dist2 / (2 * sigma ** 2))
        self.fields = fields / fields.sum(1, keepdim=True)                   # (n, P)
        self.projection = torch.randn(1280, cfg.num_feature_voxels, generator=gen) / 1280 ** 0.5
        self.feature_fn = feature_fn or mobilenet_v2_features
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def signal(self, stimuli: np.ndarray) -> torch.Tensor:
        """(N, 32, 32) uint8 -> noiseless (N, V) responses, standardised with the statistics of
        the first call (the training stimuli)."""
        x = torch.from_numpy(stimuli).float().flatten(1) / 255
        pixel = x @ self.fields.T
        feature = self.feature_fn(stimuli) @ self.projection
        raw = torch.cat([pixel, feature], 1)
        if self.mean is None:
            self.mean, self.std = raw.mean(0), raw.std(0).clamp_min(1e-6)
        return (raw - self.mean) / self.std

    def responses(self, signal: torch.Tensor, repeats: int, gen: torch.Generator) -> torch.Tensor:
        """Mean of ``repeats`` noisy trials of ``signal`` (N, V)."""
        noise = torch.randn((repeats, *signal.shape), generator=gen).mean(0)
        return signal + noise / self.cfg.snr ** 0.5


@torch.no_grad()
def mobilenet_v2_features(stimuli: np.ndarray, batch_size: int = 200) -> torch.Tensor:
    """(N, 32, 32) uint8 grey -> (N, 1280) global-pooled features of the real ImageNet
    MobileNetV2 (RGB replicated, 112 px, ImageNet normalisation)."""
    from mmext.cam.imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_classifier
    model = imagenet_classifier('mobilenet_v2').model.eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(stimuli), batch_size):
        x = torch.from_numpy(stimuli[start:start + batch_size]).float()[:, None] / 255
        x = F.interpolate(x, size=112, mode='bilinear', align_corners=False).expand(-1, 3, -1, -1)
        feats = model.features((x - mean) / std)
        out.append(feats.mean((2, 3)))
    return torch.cat(out)


def make_simulated_fmri(out_dir: str | Path, cfg: SimulatorConfig | None = None,
                        fashion_root: str | None = None, feature_fn=None) -> Path:
    """Write ``out_dir/simulated_fmri.npz`` (``{split}_voxels`` (N, V) float32, ``{split}_images``
    (N, 32, 32) uint8, ``{split}_labels``, ``{split}_source_index`` (index into Fashion-MNIST
    train or test) for train / val / test) and ``out_dir/simulator.json`` (the config)."""
    cfg = cfg or SimulatorConfig()
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    train_images, train_labels = load_fashion_mnist('train', fashion_root)
    test_images, test_labels = load_fashion_mnist('test', fashion_root)
    order = torch.randperm(len(train_images), generator=gen).numpy()
    if cfg.num_train + cfg.num_val > len(order):
        raise ValueError(f'num_train + num_val = {cfg.num_train + cfg.num_val} exceeds the '
                         f'{len(order)} Fashion-MNIST training images')
    picks = {'train': order[:cfg.num_train],
             'val': order[cfg.num_train:cfg.num_train + cfg.num_val]}
    per_class, rest = divmod(cfg.num_test, 10)
    if rest:
        raise ValueError(f'num_test = {cfg.num_test} must be a multiple of the 10 classes')
    picks['test'] = np.concatenate([np.flatnonzero(test_labels == c)[:per_class]
                                    for c in range(10)])
    model = EncodingModel(cfg, feature_fn)
    arrays = {}
    for split in ('train', 'val', 'test'):           # train first: its statistics standardise
        images = train_images if split != 'test' else test_images
        labels = train_labels if split != 'test' else test_labels
        stimuli = pad_stimuli(images[picks[split]])
        repeats = cfg.test_repeats if split == 'test' else 1
        voxels = model.responses(model.signal(stimuli), repeats, gen)
        arrays.update({f'{split}_voxels': voxels.numpy().astype(np.float32),
                       f'{split}_images': stimuli, f'{split}_labels': labels[picks[split]],
                       f'{split}_source_index': picks[split]})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / 'simulated_fmri.npz', **arrays)
    (out / 'simulator.json').write_text(json.dumps(asdict(cfg), indent=1) + '\n')
    return out / 'simulated_fmri.npz'
