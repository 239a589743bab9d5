"""Image reconstruction metrics (spec 1.7): Pearson correlation of pixels, SSIM with a named
convention, and n-way top-1 identification by a classifier that judges."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from torch import Tensor

from mmext.registry import METRICS


def gaussian_ssim(x: Tensor, y: Tensor, data_range: float = 1.0, sigma: float = 1.5,
                  uniform_window: int | None = None) -> Tensor:
    """Mean SSIM per image (B,) of (B, C, H, W) tensors, K1 0.01, K2 0.03, averaged over channels
    and the valid region. Default: Gaussian window of ``sigma`` truncated at 3.5 sigma,
    population covariances (skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``, Wang et al. 2004). ``uniform_window=7``: a uniform 7 x 7
    window with sample covariances (skimage's defaults, which MinD-Vis's evaluation uses).
    Differentiable."""
    if uniform_window:
        radius = uniform_window // 2
        g = torch.full((uniform_window, ), 1.0 / uniform_window, dtype=x.dtype, device=x.device)
    else:
        radius = int(3.5 * sigma + 0.5)
    if min(x.shape[-2:]) < 2 * radius + 1:
        raise ValueError(f'SSIM with a window of {2 * radius + 1} pixels needs images at least '
                         f'that large, got {tuple(x.shape[-2:])}')
    if not uniform_window:
        grid = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        g = torch.exp(-grid ** 2 / (2 * sigma ** 2))
        g = g / g.sum()
    c = x.shape[1]
    wx = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    wy = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    mx, my = blur(x), blur(y)
    n = (2 * radius + 1) ** 2
    norm = n / (n - 1) if uniform_window else 1.0     # sample covariances for the uniform window
    vx = norm * (blur(x * x) - mx ** 2)
    vy = norm * (blur(y * y) - my ** 2)
    cov = norm * (blur(x * y) - mx * my)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def pixel_pcc(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation per image (B,) over all pixels and channels."""
    x, y = x.flatten(1).double(), y.flatten(1).double()
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    return ((x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1)).clamp_min(1e-12)).float()


def n_way_identification(pred_probs: Tensor, true_class: Tensor, n_way: int, trials: int,
                         generator: torch.Generator) -> Tensor:
    """Per sample (B,): share of ``trials`` in which ``p[y*]`` beats ``n_way - 1`` distinct
    classes drawn from those != y* (MinD-Vis's n-way top-1; spec 1.7).

    Args:
        pred_probs: (B, K) class probabilities of the reconstructions.
        true_class: (B,) y*, the judge's class of each ground truth.
    """
    b, k = pred_probs.shape
    if not 2 <= n_way <= k:
        raise ValueError(f'{n_way}-way identification needs 2 <= n <= {k} classes')
    out = torch.empty(b)
    for i in range(b):
        y = int(true_class[i])
        others = torch.tensor([c for c in range(k) if c != y])
        wins = 0
        for _ in range(trials):
            drawn = others[torch.randperm(len(others), generator=generator)[:n_way - 1]]
            wins += bool((pred_probs[i, y] > pred_probs[i, drawn]).all())
        out[i] = wins / trials
    return out


class Judge:
    """A classifier that judges reconstructions: mmpretrain model from ``config`` and
    ``checkpoint`` (or any callable ``images in [-1, 1] -> logits``). Images are resized to
    ``input_size`` and mapped to [0, 255] for the model's own data preprocessor."""

    def __init__(self, config: str | None = None, checkpoint: str | None = None,
                 input_size: int | None = None, fn: Callable[[Tensor], Tensor] | None = None,
                 name: str | None = None):
        self.model = None
        if fn is None:
            from pathlib import Path
            if checkpoint is None or not Path(checkpoint).is_file():
                raise FileNotFoundError(
                    f'the judge checkpoint {checkpoint!r} does not exist: point judge.checkpoint '
                    'at your classifier (production: an ImageNet classifier, '
                    'projects/cmvdm/README.md#production-configs), or for the demo train its '
                    'judge: python tools/train.py configs/cmvdm/judge_lenet5_fashion-mnist.py')
            from mmpretrain.apis import init_model
            model = self.model = init_model(config, checkpoint, device='cpu').eval()
            # a preprocessor with to_rgb=True expects BGR (OpenCV's order) and swaps: our
            # images are RGB, so hand it BGR
            to_rgb = bool(getattr(model.data_preprocessor, 'to_rgb', False))

            def fn(images):
                x = (images + 1) * 127.5
                if to_rgb and x.shape[1] == 3:
                    x = x.flip(1)
                if input_size and x.shape[-1] != input_size:
                    x = F.interpolate(x, size=input_size, mode='bilinear', align_corners=False)
                data = model.data_preprocessor({'inputs': list(x)}, False)
                return model(data['inputs'], mode='tensor')
        self.fn = fn
        self.name = name or (f'{config} @ {checkpoint}' if config else 'a given classifier')

    @torch.no_grad()
    def probs(self, images: Tensor) -> Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, classes) probabilities."""
        # reshape: some backbones squeeze a batch of one away (mmpretrain's LeNet5)
        return self.fn(images).reshape(len(images), -1).softmax(-1)

    @torch.no_grad()
    def features(self, images: Tensor, layer: str) -> Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, D): the output of the judge's module ``layer`` (a
        name from ``model.named_modules()``, e.g. 'backbone.classifier.1'), flattened."""
        if self.model is None:
            raise ValueError('judge features need a judge built from config and checkpoint')
        try:
            module = self.model.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in self.model.named_modules() if n]
            raise ValueError(f'the judge has no module {layer!r}; it has {names}') from None
        seen = []
        handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
        try:
            self.fn(images)
        finally:
            handle.remove()
        return seen[-1].reshape(len(images), -1)


@METRICS.register_module()
class ReconstructionMetric(BaseMetric):
    """PCC, SSIM and n-way top-1 identification of reconstructions (outputs of models whose
    ``predict`` returns ``pred`` (K, C, H, W) and ``gt`` (C, H, W), both in [-1, 1]).

    Every figure is the mean over the K samples of each item, then over items; ``best_of_k``
    adds the best-of-K identification in keys that say so (``.../best_of_K``).

    Args:
        judge: ``dict(config=..., checkpoint=..., input_size=...)`` for :class:`Judge`, or a
            ``Judge``; None: no identification.
        n_way: the n of each identification figure.
        ssim_convention: 'grey-gauss1.5' (luminance of images in [0, 1], Gaussian window 1.5,
            as NSD papers) or 'rgb-255' (per channel, data range 255, uniform 7 x 7 window with
            sample covariances: scikit-image's defaults, MinD-Vis's evaluation): named in the
            metric key.
    """

    default_prefix = 'recon'

    def __init__(self, judge: dict | Judge | None = None, n_way: Sequence[int] = (2, 10),
                 trials: int = 50, seed: int = 0, best_of_k: bool = False,
                 ssim_convention: str = 'grey-gauss1.5', **kwargs):
        super().__init__(**kwargs)
        if ssim_convention not in ('grey-gauss1.5', 'rgb-255'):
            raise ValueError(f"ssim_convention must be 'grey-gauss1.5' or 'rgb-255', got "
                             f'{ssim_convention!r}')
        self.judge = Judge(**judge) if isinstance(judge, dict) else judge
        self.n_way, self.trials, self.seed = tuple(n_way), trials, seed
        self.best_of_k, self.ssim_convention = best_of_k, ssim_convention

    def _ssim(self, pred: Tensor, gt: Tensor) -> Tensor:
        if self.ssim_convention == 'rgb-255':
            return gaussian_ssim((pred + 1) * 127.5, (gt + 1) * 127.5, data_range=255.0,
                                 uniform_window=7)
        luma = torch.tensor([0.299, 0.587, 0.114])

        def grey(t):
            t = (t + 1) / 2
            return t if t.shape[1] == 1 else (t * luma.view(1, 3, 1, 1)).sum(1, keepdim=True)

        return gaussian_ssim(grey(pred), grey(gt), data_range=1.0)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for out in data_samples:
            pred, gt = out['pred'].float(), out['gt'].float()
            k = pred.shape[0]
            gts = gt[None].expand(k, -1, -1, -1)
            row = dict(pcc=pixel_pcc(pred, gts).numpy(), ssim=self._ssim(pred, gts).numpy())
            if self.judge is not None:
                row['p_pred'] = self.judge.probs(pred)
                row['y_true'] = int(self.judge.probs(gt[None]).argmax(-1))
            self.results.append(row)

    def compute_metrics(self, results: list) -> dict:
        out = {'pcc': float(np.mean([r['pcc'].mean() for r in results])),
               f'ssim_{self.ssim_convention}': float(np.mean([r['ssim'].mean() for r in results]))}
        if self.judge is not None:
            gen = torch.Generator().manual_seed(self.seed)
            for n in self.n_way:
                per_item, best = [], []
                for r in results:
                    k = r['p_pred'].shape[0]
                    acc = n_way_identification(r['p_pred'], torch.full((k, ), r['y_true']), n,
                                               self.trials, gen)
                    per_item.append(float(acc.mean()))
                    best.append(float(acc.max()))
                out[f'{n}way_top1'] = float(np.mean(per_item))
                if self.best_of_k:
                    out[f'{n}way_top1/best_of_K'] = float(np.mean(best))
        return out
