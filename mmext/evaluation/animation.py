"""Same-identity reconstruction metrics of animated frames (spec 1.7 / 11.6): L1, PSNR, SSIM
and a temporal-consistency error, for the refined frames and, beside them, the coarse
animator's frames of the same run."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

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


@METRICS.register_module()
class AnimationMetric(BaseMetric):
    """L1, PSNR (dB), SSIM (grey luminance, Gaussian 1.5: ``ssim_grey-gauss1.5``) of ``pred``
    (first sample) against ``gt`` and, when the outputs carry it, of ``coarse`` (keys
    ``coarse_*``), frames in [-1, 1] mapped to [0, 1]; ``tc_l1``: :func:`temporal_error` per
    sequence (``sequence_id``, ordered by ``frame``), averaged over sequences of two frames or
    more. ``num_steps`` is reported when the outputs carry it.
    """

    default_prefix = 'anim'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for out in data_samples:
            row = dict(pred=((out['pred'][0].float() + 1) / 2).clamp(0, 1),
                       gt=((out['gt'].float() + 1) / 2).clamp(0, 1),
                       sequence_id=int(out.get('sequence_id', -1)),
                       frame=int(out.get('frame', 0)), num_steps=out.get('num_steps'))
            if out.get('coarse') is not None:
                row['coarse'] = ((out['coarse'].float() + 1) / 2).clamp(0, 1)
            self.results.append(row)

    @staticmethod
    def _frame_metrics(pred: Tensor, gt: Tensor) -> dict:
        grey = torch.tensor([0.299, 0.587, 0.114])

        def luma(t):
            return t if t.shape[1] == 1 else (t * grey.view(1, 3, 1, 1)).sum(1, keepdim=True)

        return {'l1': float((pred - gt).abs().mean()), 'psnr': float(psnr(pred, gt).mean()),
                'ssim_grey-gauss1.5': float(gaussian_ssim(luma(pred), luma(gt)).mean())}

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
            sequences[r['sequence_id']].append(r)
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
