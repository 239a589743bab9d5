# FADM's diffusion (spec 11.3-11.4): DDPM with 100 steps, linear betas 1e-3 -> 0.2, epsilon, no
# x0 clipping; test: DDIM eta 1 over all 100 steps with one noise per sequence; mean L1 + the
# AGCN feature loss (weight 1), the coarse frame in AGCN's reference slot. The configs that use
# it add the animator, AGCN and the denoiser.
noise_schedule = dict(num_train_timesteps=100, beta_schedule='linear', beta_start=1e-3,
                      beta_end=0.2, clip_sample=False, prediction_type='epsilon')
model = dict(
    type='mmext.FADM',
    scheduler=dict(type='mmext.DiffusersScheduler', cls='DDPMScheduler',
                   from_config=noise_schedule),
    sample_scheduler=dict(type='mmext.DiffusersScheduler', cls='DDIMScheduler',
                          from_config=noise_schedule),
    feat_weight=1.0, use_attributes=True, reference='coarse',
    sampling=dict(num_steps=100, eta=1.0, seed=0),
    data_preprocessor=dict(type='BaseDataPreprocessor'))
