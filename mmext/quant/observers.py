"""Clipping ranges for calibration: min-max, percentile and MSE-optimal, per tensor or per group.

Calibration sets a quantizer's step (and zero point) from data before QAT or for
post-training quantization. Every method here returns a clipping range ``(lo, hi)`` per scale
group; the quantizer turns a range into its own parameters
(:meth:`mmext.quant.quantizers._StepQuantizer.params_for_range`), so one estimator serves the
symmetric LSQ grid and the asymmetric LSQ+ grid alike.

Values arrive as ``(G, M)`` rows, one per scale group (:func:`group_rows`), with a weight per
value: a weight tensor is its own exact sample (weights 1), activations over many batches are
summarised by a histogram per group whose bin centres carry the bin counts
(:class:`ActivationObserver`). Histograms sum across batches and processes, so calibration under
DDP gives the steps of one process that saw all the data.

- ``minmax``: ``(min, max)``.
- ``percentile``: ``(P_{100-p}, P_p)`` with numpy's linear interpolation (exact for weights;
  from the histogram, within one bin width, for activations).
- ``mse``: the range that minimises ``sum_i w_i (x_i - Q(x_i))^2`` over ``grid`` candidates
  ``(a lo, a hi)``, ``a = 1 / grid, ..., 1``; for grids with a zero point, each end is then
  moved towards the other, one at a time, over the same ratios of the span (two rounds).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

CALIBRATION_METHODS = ('minmax', 'percentile', 'mse')

# params_for_range(lo, hi) -> (scale, zero_point or None), each (G,) or broadcastable
RangeToParams = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class CalibrationSpec:
    """How a quantizer's step is set from data.

    Args:
        method: 'minmax', 'percentile' or 'mse'.
        batches: training batches whose activations are observed (weights need none).
        percentile: p of the 'percentile' method, in (50, 100].
        bins: histogram bins per scale group for activations (fewer per group when there are
            many groups, see :class:`ActivationObserver`).
        grid: candidate clipping ratios of the 'mse' search.
    """

    method: str = 'mse'
    batches: int = 16
    percentile: float = 99.99
    bins: int = 2048
    grid: int = 100

    def __post_init__(self):
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f'calibration method {self.method!r} is unknown; choose one of '
                             f'{CALIBRATION_METHODS}, or calibration=None for the data-free LSQ '
                             'initialisation')
        if not isinstance(self.batches, int) or self.batches < 1:
            raise ValueError(f'calibration batches must be an integer >= 1, got {self.batches!r}')
        if not 50 < self.percentile <= 100:
            raise ValueError(f'calibration percentile must be in (50, 100], got {self.percentile}')
        if self.bins < 16 or self.grid < 2:
            raise ValueError(f'calibration needs bins >= 16 and grid >= 2, got bins={self.bins}, '
                             f'grid={self.grid}')

    @classmethod
    def build(cls, cfg: dict | CalibrationSpec | None) -> CalibrationSpec | None:
        """A spec from a config dict (unknown keys are refused), a spec, or None."""
        if cfg is None or isinstance(cfg, CalibrationSpec):
            return cfg
        if not isinstance(cfg, dict):
            raise TypeError(f'calibration must be a dict such as dict(method="mse", batches=16) '
                            f'or None, got {cfg!r}')
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'calibration has unknown keys {sorted(unknown)}; it takes '
                             f'{sorted(cls.__dataclass_fields__)}')
        return cls(**cfg)


def group_rows(x: torch.Tensor, channel_dim: int | None) -> torch.Tensor:
    """``x`` as (G, M) float rows: one row per index of ``channel_dim`` (G = its size), or a
    single row (G = 1) when ``channel_dim`` is None."""
    x = x.detach().float()
    if channel_dim is None:
        return x.reshape(1, -1)
    return x.movedim(channel_dim, 0).reshape(x.shape[channel_dim], -1)


def quantize_rows(values: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None,
                  qn: int, qp: int) -> torch.Tensor:
    """``s (clamp(round(v / s + z), qn, qp) - z)`` with s, z broadcast against ``values``."""
    t = values / scale
    if zero_point is not None:
        t = t + zero_point
    q = t.round().clamp(qn, qp)
    return (q if zero_point is None else q - zero_point) * scale


def minmax_range(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (min, max) of (G, M) values."""
    return values.amin(dim=1), values.amax(dim=1)


def percentile_range(values: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(P_{100-p}, P_p)`` of (G, M) values, numpy's linear interpolation."""
    q = torch.tensor([1 - p / 100, p / 100], dtype=values.dtype, device=values.device)
    if values.numel() <= 2 ** 24:  # torch.quantile's size limit
        lo, hi = torch.quantile(values, q, dim=1)
        return lo, hi
    import numpy as np
    lo, hi = np.quantile(values.cpu().numpy(), q.cpu().numpy(), axis=1)
    return (torch.from_numpy(lo).to(values), torch.from_numpy(hi).to(values))


def histogram_percentile_range(edges_lo: torch.Tensor, width: torch.Tensor,
                               counts: torch.Tensor, p: float
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(P_{100-p}, P_p)`` per row from histograms (G, B) whose bins start at ``edges_lo`` and
    are ``width`` wide (both (G,)); values are taken as spread evenly inside each bin."""
    cdf = counts.cumsum(dim=1)
    total = cdf[:, -1:].clamp_min(1)

    def at(fraction: float) -> torch.Tensor:
        target = fraction * total  # (G, 1)
        index = torch.searchsorted(cdf, target).clamp(max=counts.shape[1] - 1)  # first bin >= t
        before = torch.where(index > 0, cdf.gather(1, (index - 1).clamp_min(0)),
                             torch.zeros_like(target))
        inside = counts.gather(1, index).clamp_min(1e-12)
        offset = ((target - before) / inside).clamp(0, 1)
        return (edges_lo[:, None] + (index + offset) * width[:, None]).squeeze(1)

    return at(1 - p / 100), at(p / 100)


def mse_range(values: torch.Tensor, weights: torch.Tensor | None, lo: torch.Tensor,
              hi: torch.Tensor, params_for_range: RangeToParams, qn: int, qp: int,
              grid: int = 100, asymmetric: bool = True, chunk_elements: int = 2 ** 23
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipping range that minimises the weighted squared quantization error per row.

    Args:
        values: (G, M) values (weights, or histogram bin centres).
        weights: (G, M) weight of each value (bin counts), or None for all ones.
        lo, hi: (G,) the full range (min and max).
        params_for_range: maps candidate ranges (G, K) to the quantizer's scale and zero point.
        qn, qp: the integer grid.
        grid: candidates ``a = 1/grid, 2/grid, ..., 1`` scale ``(lo, hi)``.
        asymmetric: then refine ``lo`` to ``hi - a (hi - lo)`` and ``hi`` to
            ``lo + a (hi - lo)``, one after the other, twice (grids with a zero point; a
            symmetric grid depends only on ``max(|lo|, |hi|)``).
    """
    ratios = torch.arange(1, grid + 1, dtype=values.dtype, device=values.device) / grid

    def best(cand_lo: torch.Tensor, cand_hi: torch.Tensor) -> torch.Tensor:
        """Index (G,) of the candidate range (G, K) with the least error."""
        num_groups, num_cands = cand_lo.shape
        step = max(1, chunk_elements // max(1, values.numel()))
        errors = []
        for start in range(0, num_cands, step):
            c_lo, c_hi = cand_lo[:, start:start + step], cand_hi[:, start:start + step]
            scale, zero_point = params_for_range(c_lo, c_hi)
            scale = scale.reshape(num_groups, -1, 1)
            # quantize_rows, then the squared error, in place: (G, k, M)
            err = values[:, None] / scale
            if zero_point is not None:
                zero_point = zero_point.reshape(num_groups, -1, 1)
                err.add_(zero_point)
            err.round_().clamp_(qn, qp)
            if zero_point is not None:
                err.sub_(zero_point)
            err.mul_(scale).sub_(values[:, None]).square_()
            if weights is not None:
                err.mul_(weights[:, None])
            errors.append(err.sum(dim=2))
        return torch.cat(errors, dim=1).argmin(dim=1)

    joint = ratios[None] * torch.ones_like(lo)[:, None]  # (G, K)
    k = best(lo[:, None] * joint, hi[:, None] * joint)
    best_lo, best_hi = lo * ratios[k], hi * ratios[k]
    for _ in range(2 if asymmetric else 0):  # move each end towards the other, the other fixed
        span = (best_hi - lo)[:, None] * joint
        k = best(best_hi[:, None] - span, best_hi[:, None].expand_as(joint))
        best_lo = best_hi - (best_hi - lo) * ratios[k]
        span = (hi - best_lo)[:, None] * joint
        k = best(best_lo[:, None].expand_as(joint), best_lo[:, None] + span)
        best_hi = best_lo + (hi - best_lo) * ratios[k]
    return best_lo, best_hi


def _all_reduce(t: torch.Tensor, op) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=op)
    return t


class ActivationObserver:
    """Statistics of one quantizer's inputs over calibration batches, then its clipping range.

    Two passes over the same batches: :meth:`observe_range` (min and max per group), then, for
    'percentile' and 'mse', :meth:`observe_histogram` (a histogram per group over that range).
    :meth:`sync_range` and :meth:`sync_histogram` reduce the statistics over the processes of a
    distributed run (min, max, sum), so every process ends with the same range; a process whose
    data never reached the quantizer takes part with empty statistics.

    A quantizer with many groups (per input channel) gets fewer bins per group, at most
    ``BIN_BUDGET`` in all, but never fewer than ``MIN_BINS`` nor two per quantization level;
    one group gets ``spec.bins``.

    Args:
        spec: the calibration method and its settings.
        channel_dim: the quantizer's group dimension, None for one group.
        num_groups: the number of groups (1 for None).
        levels: the quantizer's number of levels (2^bits).
        name: the quantizer's name, for messages.
        device: where the statistics live (the quantizer's device).
    """

    BIN_BUDGET = 2 ** 16
    MIN_BINS = 128

    def __init__(self, spec: CalibrationSpec, channel_dim: int | None, num_groups: int = 1,
                 levels: int = 256, name: str = 'quantizer',
                 device: torch.device | str | None = None):
        self.spec, self.channel_dim, self.name = spec, channel_dim, name
        self.lo = torch.full((num_groups, ), float('inf'), device=device)
        self.hi = torch.full((num_groups, ), float('-inf'), device=device)
        self.counts = None
        self.bins = max(min(spec.bins, self.BIN_BUDGET // num_groups), self.MIN_BINS,
                        2 * levels)
        self.pass_ = 'range'

    @property
    def seen(self) -> bool:
        """Whether some input reached the quantizer (in any process, after :meth:`sync_range`)."""
        return bool(torch.isfinite(self.lo).all())

    @property
    def needs_histogram(self) -> bool:
        return self.spec.method != 'minmax'

    def __call__(self, x: torch.Tensor) -> None:
        if self.pass_ == 'range':
            self.observe_range(x)
        else:
            self.observe_histogram(x)

    def observe_range(self, x: torch.Tensor) -> None:
        rows = group_rows(x, self.channel_dim)
        if rows.shape[0] != self.lo.numel():
            raise ValueError(f'calibration of {self.name}: {self.lo.numel()} groups expected '
                             f'along dim {self.channel_dim}, the input has shape '
                             f'{tuple(x.shape)}')
        lo, hi = minmax_range(rows)
        self.lo, self.hi = torch.minimum(self.lo, lo), torch.maximum(self.hi, hi)

    def sync_range(self) -> None:
        _all_reduce(self.lo, dist.ReduceOp.MIN)
        _all_reduce(self.hi, dist.ReduceOp.MAX)

    @property
    def width(self) -> torch.Tensor:
        return ((self.hi - self.lo) / self.bins).clamp_min(1e-12)

    def observe_histogram(self, x: torch.Tensor) -> None:
        rows = group_rows(x, self.channel_dim)
        bins = self.bins
        index = ((rows - self.lo[:, None]) / self.width[:, None]).floor().clamp_(0, bins - 1)
        index = index.long() + torch.arange(rows.shape[0], device=rows.device)[:, None] * bins
        counts = torch.bincount(index.reshape(-1), minlength=rows.shape[0] * bins)
        counts = counts.reshape(rows.shape[0], bins).double()
        self.counts = counts if self.counts is None else self.counts + counts

    def sync_histogram(self) -> None:
        if self.counts is None:  # this process's data did not reach the quantizer
            self.counts = torch.zeros(self.lo.numel(), self.bins, dtype=torch.float64,
                                      device=self.lo.device)
        _all_reduce(self.counts, dist.ReduceOp.SUM)

    def range(self, params_for_range: RangeToParams, qn: int, qp: int,
              asymmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The clipping range (lo, hi), each (G,), by the spec's method."""
        method = self.spec.method
        if method == 'minmax':
            return self.lo, self.hi
        if method == 'percentile':
            return histogram_percentile_range(self.lo, self.width, self.counts,
                                              self.spec.percentile)
        centres = self.lo[:, None] + (torch.arange(self.bins, device=self.lo.device)
                                      + 0.5) * self.width[:, None]
        return mse_range(centres, self.counts.float(), self.lo, self.hi, params_for_range, qn,
                         qp, self.spec.grid, asymmetric)


def weight_range(w: torch.Tensor, spec: CalibrationSpec, channel_dim: int | None,
                 params_for_range: RangeToParams, qn: int, qp: int,
                 asymmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipping range of a weight tensor per group, computed exactly on its values."""
    rows = group_rows(w, channel_dim)
    lo, hi = minmax_range(rows)
    if spec.method == 'percentile':
        return percentile_range(rows, spec.percentile)
    if spec.method == 'mse':
        return mse_range(rows, None, lo, hi, params_for_range, qn, qp, spec.grid, asymmetric)
    return lo, hi
