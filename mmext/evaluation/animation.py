"""Same-identity reconstruction metrics of animated frames (spec 1.7 / 11.6): L1, PSNR, SSIM,
LPIPS (AlexNet, when its weights are a local file) and a temporal-consistency error, for the
refined frames and, beside them, the coarse animator's frames of the same run."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

from mmext.registry import METRICS

from .image_quality import gaussian_ssim


def psnr(pred: Tensor, gt: Tensor) -> Tensor:
    """(B, C, H, W) in [0, 1] -> (B,) PSNR in dB (data range 1)."""
    mse = ((pred - gt) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def temporal_error(pred: Sequence[Tensor], gt: Sequence[Tensor]) -> float:
    """Mean over consecutive frame pairs of ``|(p[t+1] - p[t]) - (g[t+1] - g[t])|`` (frames in
    [0, 1]): how much the generated frame-to-frame change departs from the true one (flicker
    adds to it; 0 for a perfect video). Needs two frames or more."""
    p, g = torch.stack(list(pred)), torch.stack(list(gt))
    return float(((p[1:] - p[:-1]) - (g[1:] - g[:-1])).abs().mean())


def build_lpips(alexnet_checkpoint: str):
    """The ``lpips`` package's AlexNet LPIPS (v0.1 linear layers from its wheel) with
    torchvision's AlexNet features read from a local file (``alexnet-owt-7be5be79.pth`` or any
    state dict with its ``features.*`` keys); never a download."""
    path = Path(alexnet_checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"LPIPS needs torchvision's AlexNet weights at {path}: copy alexnet-owt-7be5be79.pth "
            "there (torchvision.models.alexnet(weights='IMAGENET1K_V1') downloads it on a "
            'machine with access), or leave lpips_alexnet out')
    import lpips
    model = lpips.LPIPS(net='alex', pretrained=True, pnet_rand=True, verbose=False).eval()
    state = torch.load(path, map_location='cpu', weights_only=True)
    state = state.get('state_dict', state)
    mapped = {}
    for name in model.net.state_dict():              # slice<k>.<torchvision index>.<param>
        _, index, param = name.split('.')
        key = f'features.{index}.{param}'
        if key not in state:
            raise ValueError(f'{path} is not a torchvision AlexNet checkpoint: no {key}')
        mapped[name] = state[key]
    model.net.load_state_dict(mapped)
    return model.requires_grad_(False)


@METRICS.register_module()
class AnimationMetric(BaseMetric):
    """L1, PSNR (dB), SSIM (grey luminance, Gaussian 1.5: ``ssim_grey-gauss1.5``) of ``pred``
    (first sample) against ``gt`` and, when the outputs carry it, of ``coarse`` (keys
    ``coarse_*``), frames in [-1, 1] mapped to [0, 1]; ``tc_l1``: :func:`temporal_error` per
    sequence (``sequence_id``, ordered by ``frame``), averaged over sequences of two frames or
    more. ``num_steps`` is reported when the outputs carry it. ``lpips_alexnet``: a local
    torchvision AlexNet checkpoint; adds ``lpips_alex`` (and ``coarse_lpips_alex``), inputs in
    [-1, 1], grey repeated to RGB.
    """

    default_prefix = 'anim'

    def __init__(self, lpips_alexnet: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.lpips = build_lpips(lpips_alexnet) if lpips_alexnet else None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for out in data_samples:
            row = dict(pred=((out['pred'][0].float() + 1) / 2).clamp(0, 1),
                       gt=((out['gt'].float() + 1) / 2).clamp(0, 1),
                       sequence_id=out.get('sequence_id'),
                       frame=int(out.get('frame', 0)), num_steps=out.get('num_steps'))
            if out.get('coarse') is not None:
                row['coarse'] = ((out['coarse'].float() + 1) / 2).clamp(0, 1)
            self.results.append(row)

    def _frame_metrics(self, pred: Tensor, gt: Tensor) -> dict:
        grey = torch.tensor([0.299, 0.587, 0.114])

        def luma(t):
            return t if t.shape[1] == 1 else (t * grey.view(1, 3, 1, 1)).sum(1, keepdim=True)

        out = {'l1': float((pred - gt).abs().mean()), 'psnr': float(psnr(pred, gt).mean()),
               'ssim_grey-gauss1.5': float(gaussian_ssim(luma(pred), luma(gt)).mean())}
        if self.lpips is not None:
            def rgb(t):
                return (t if t.shape[1] == 3 else t.expand(-1, 3, -1, -1)) * 2 - 1

            with torch.no_grad():
                out['lpips_alex'] = float(self.lpips(rgb(pred), rgb(gt)).mean())
        return out

    def compute_metrics(self, results: list) -> dict:
        gt = torch.stack([r['gt'] for r in results])
        out = self._frame_metrics(torch.stack([r['pred'] for r in results]), gt)
        kinds = ['pred']
        if all('coarse' in r for r in results):
            coarse = self._frame_metrics(torch.stack([r['coarse'] for r in results]), gt)
            out |= {f'coarse_{k}': v for k, v in coarse.items()}
            kinds.append('coarse')
        sequences = defaultdict(list)
        for r in results:
            if r['sequence_id'] is not None:        # frames without one form no video
                sequences[int(r['sequence_id'])].append(r)
        videos = [sorted(v, key=lambda r: r['frame']) for v in sequences.values() if len(v) > 1]
        if videos:
            for kind in kinds:
                key = 'tc_l1' if kind == 'pred' else 'coarse_tc_l1'
                out[key] = float(np.mean([temporal_error([r[kind] for r in v],
                                                         [r['gt'] for r in v])
                                          for v in videos]))
        steps = {r['num_steps'] for r in results if r['num_steps'] is not None}
        if steps:
            out['num_steps'] = max(steps)
        return out
