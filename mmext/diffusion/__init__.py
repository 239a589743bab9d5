"""diffusers models and schedulers as registered, config-built components (spec 1.5): builders,
the training example (noise, timestep, target), sampling with fixed noise, and the CompVis
checkpoint layout (UNet and first stage)."""
from .builders import build_diffusers_model, build_diffusers_scheduler
from .convert import (
    checkpoint_state_dict,
    diffusers_to_ldm_unet,
    diffusers_to_ldm_vq,
    ldm_to_diffusers_unet,
    ldm_to_diffusers_vq,
)
from .sampling import FixedNoise, sample
from .training import NoisyBatch, noisy_batch

__all__ = ['build_diffusers_model', 'build_diffusers_scheduler', 'checkpoint_state_dict',
           'diffusers_to_ldm_unet', 'ldm_to_diffusers_unet', 'diffusers_to_ldm_vq',
           'ldm_to_diffusers_vq', 'FixedNoise', 'sample', 'NoisyBatch', 'noisy_batch']
