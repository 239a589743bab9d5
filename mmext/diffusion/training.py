"""One diffusion training example per image: timestep, noise, noisy input and the regression
target the scheduler's ``prediction_type`` asks for (spec 1.5)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class NoisyBatch(NamedTuple):
    """``noisy`` (B, ...) = add_noise(x0, noise, timesteps); ``target`` what the denoiser
    regresses: ``noise`` (epsilon), ``x0`` (sample) or the velocity (v_prediction)."""
    noisy: Tensor
    timesteps: Tensor
    noise: Tensor
    target: Tensor


def noisy_batch(scheduler, x0: Tensor, noise: Tensor | None = None,
                timesteps: Tensor | None = None,
                generator: torch.Generator | None = None) -> NoisyBatch:
    """Draw ``t ~ U{0, ..., T-1}`` and ``noise ~ N(0, I)`` per sample (unless given) and noise
    ``x0`` (B, ...) with ``scheduler`` (a diffusers scheduler with ``add_noise``)."""
    batch = x0.shape[0]
    num_steps = scheduler.config.num_train_timesteps
    if timesteps is None:
        timesteps = torch.randint(0, num_steps, (batch, ), generator=generator).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    if noise.shape != x0.shape or timesteps.shape != (batch, ):
        raise ValueError(f'noise {tuple(noise.shape)} must match x0 {tuple(x0.shape)} and '
                         f'timesteps {tuple(timesteps.shape)} must be ({batch},)')
    kind = scheduler.config.prediction_type
    if kind == 'epsilon':
        target = noise
    elif kind == 'sample':
        target = x0
    elif kind == 'v_prediction':
        target = scheduler.get_velocity(x0, noise, timesteps)
    else:
        raise ValueError(f'prediction_type {kind!r} is not one of epsilon, sample, '
                         'v_prediction')
    return NoisyBatch(scheduler.add_noise(x0, noise, timesteps), timesteps, noise, target)
