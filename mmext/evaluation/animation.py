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
    ``coarse_*``), frames in [-1, 1] mapped to [0, 1]; ``tc_l1``: the temporal error of
    :func:`temporal_error` per sequence (``sequence_id``; consecutive ``frame`` numbers, in the
    order the test loader gives them), averaged over sequences with two frames or more.
    ``num_steps`` is reported when the outputs carry it. ``lpips_alexnet``: a local torchvision
    AlexNet checkpoint; adds ``lpips_alex`` (and ``coarse_lpips_alex``), inputs in [-1, 1], grey
    repeated to RGB.

    Figures are computed batch by batch and only numbers are kept, so a test set of any length
    fits in memory; the temporal error keeps the previous frame of each open sequence.
    """

    default_prefix = 'anim'

    def __init__(self, lpips_alexnet: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.lpips = build_lpips(lpips_alexnet) if lpips_alexnet else None
        self._previous: dict[int, tuple[int, dict]] = {}

    @torch.no_grad()
    def _frame_metrics(self, pred: Tensor, gt: Tensor) -> dict[str, Tensor]:
        """(B, C, H, W) in [0, 1] -> per-frame figures, each (B,)."""
        grey = torch.tensor([0.299, 0.587, 0.114])

        def luma(t):
            return t if t.shape[1] == 1 else (t * grey.view(1, 3, 1, 1)).sum(1, keepdim=True)

        out = {'l1': (pred - gt).abs().flatten(1).mean(1), 'psnr': psnr(pred, gt),
               'ssim_grey-gauss1.5': gaussian_ssim(luma(pred), luma(gt))}
        if self.lpips is not None:
            def rgb(t):
                return (t if t.shape[1] == 3 else t.expand(-1, 3, -1, -1)) * 2 - 1

            out['lpips_alex'] = self.lpips(rgb(pred), rgb(gt)).flatten()
        return out

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        def unit(t):
            return ((t.float() + 1) / 2).clamp(0, 1)

        frames = {'pred': torch.stack([unit(o['pred'][0]) for o in data_samples])}
        if all(o.get('coarse') is not None for o in data_samples):
            frames['coarse'] = torch.stack([unit(o['coarse']) for o in data_samples])
        gt = torch.stack([unit(o['gt']) for o in data_samples])
        figures = {kind: self._frame_metrics(f, gt) for kind, f in frames.items()}
        for i, out in enumerate(data_samples):
            row = {('' if kind == 'pred' else 'coarse_') + name: float(v[i])
                   for kind, values in figures.items() for name, v in values.items()}
            row.update(num_steps=out.get('num_steps'), sequence_id=out.get('sequence_id'))
            if row['sequence_id'] is not None:
                seq, frame = int(row['sequence_id']), int(out.get('frame', 0))
                now = {kind: f[i] for kind, f in frames.items()} | {'gt': gt[i]}
                before = self._previous.get(seq)
                if before is not None and before[0] == frame - 1:
                    row['tc'] = {kind: temporal_error([before[1][kind], now[kind]],
                                                      [before[1]['gt'], now['gt']])
                                 for kind in frames}
                self._previous[seq] = (frame, now)
            self.results.append(row)

    def compute_metrics(self, results: list) -> dict:
        self._previous.clear()
        names = [k for k in results[0] if k not in ('num_steps', 'sequence_id', 'tc')]
        out = {k: float(np.mean([r[k] for r in results])) for k in names
               if all(k in r for r in results)}
        pairs = defaultdict(list)
        for r in results:
            if 'tc' in r:
                pairs[int(r['sequence_id'])].append(r['tc'])
        if pairs:
            for kind in pairs[next(iter(pairs))][0]:
                key = 'tc_l1' if kind == 'pred' else 'coarse_tc_l1'
                out[key] = float(np.mean([np.mean([p[kind] for p in seq])
                                          for seq in pairs.values()]))
        steps = {r['num_steps'] for r in results if r['num_steps'] is not None}
        if steps:
            out['num_steps'] = max(steps)
        return out
