"""Sampling loops over a diffusers scheduler with noise fixed in advance.

``FixedNoise`` holds the initial noise and one noise per sampling step, drawn once from a seed;
:func:`sample` uses the same tensors for every sample of the batch, so the frames of a video (or
the images of two conditions) differ only through their conditions (FADM's shared-noise video
sampling). Schedulers whose step takes ``variance_noise`` (DDIM with eta > 0, ...) get the fixed
step noise; deterministic ones (DDIM with eta 0, PNDM) need none; others draw their own noise
and are refused.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class FixedNoise:
    """``initial`` (N, C, H, W) and ``steps``, one (N, C, H, W) tensor per sampling step; N is
    1 (shared by every sample of a batch) or the batch size (one noise per sample)."""
    initial: Tensor
    steps: list[Tensor]

    @classmethod
    def stack(cls, noises: list[FixedNoise]) -> FixedNoise:
        """One batch of per-sample noises from single ones (same step count)."""
        return cls(torch.cat([n.initial for n in noises]),
                   [torch.cat(s) for s in zip(*[n.steps for n in noises])])

    def to(self, device) -> FixedNoise:
        return FixedNoise(self.initial.to(device), [s.to(device) for s in self.steps])

    @classmethod
    def draw(cls, shape: tuple[int, ...], num_steps: int, seed: int) -> FixedNoise:
        """Draw the noise of one sample of ``shape`` (C, H, W) for ``num_steps`` steps from
        ``seed`` (CPU generator: the same tensors on every machine)."""
        gen = torch.Generator().manual_seed(int(seed))
        initial = torch.randn((1, *shape), generator=gen)
        return cls(initial, [torch.randn((1, *shape), generator=gen) for _ in range(num_steps)])


def _step_takes(scheduler, name: str) -> bool:
    return name in inspect.signature(scheduler.step).parameters


@torch.no_grad()
def sample(denoiser: Callable[[Tensor, Tensor], Tensor], scheduler, batch_size: int,
           noise: FixedNoise, num_steps: int, eta: float = 0.0) -> Tensor:
    """Run ``num_steps`` steps of ``scheduler`` from ``noise.initial`` for ``batch_size``
    samples.

    Args:
        denoiser: ``(x_t (B, C, H, W), t (B,)) -> model output`` (the scheduler's
            prediction type); conditions are bound by the caller.
        scheduler: a diffusers scheduler (its timesteps are set here).
        noise: ``FixedNoise`` with at least ``num_steps`` step noises, of batch 1 (shared) or
            ``batch_size``.
        eta: DDIM's eta (ignored by schedulers without it).

    Returns:
        (B, C, H, W) samples.
    """
    if len(noise.steps) < num_steps:
        raise ValueError(f'{len(noise.steps)} step noises for {num_steps} steps: draw '
                         'FixedNoise with num_steps >= the sampling steps')
    stochastic = _step_takes(scheduler, 'generator')
    takes_noise = _step_takes(scheduler, 'variance_noise')
    if stochastic and not takes_noise:
        raise ValueError(f'{type(scheduler).__name__} draws its own step noise, which cannot be '
                         'fixed across samples: use DDIMScheduler (eta in the config) or a '
                         'deterministic scheduler (PNDMScheduler)')
    if noise.initial.shape[0] not in (1, batch_size):
        raise ValueError(f'noise for {noise.initial.shape[0]} samples, batch of {batch_size}')
    scheduler.set_timesteps(num_steps, device=noise.initial.device)
    x = noise.initial.expand(batch_size, -1, -1, -1) * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        model_in = scheduler.scale_model_input(x, t)
        out = denoiser(model_in, t.expand(batch_size))
        kwargs = {}
        if _step_takes(scheduler, 'eta'):
            kwargs['eta'] = eta
        if takes_noise:
            kwargs['variance_noise'] = noise.steps[i].expand(batch_size, -1, -1, -1)
        x = scheduler.step(out, t, x, **kwargs).prev_sample
    return x
