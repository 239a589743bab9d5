# The CMVDM demo model: a 1-D MAE fMRI encoder (256 patches of 16 voxels, width 64, depth 2),
# its conditioner (16 context tokens of 64 dims, time condition added to the timestep
# embedding) and a pixel-space UNet2DConditionModel at 32 x 32 grey trained from scratch here
# (channels 16 / 32 / 64, self- and cross-attention at 8 x 8 and in the middle block: at 32 x 32
# and 16 x 16 attention would triple the step time on this CPU); DDPM noise schedule of the
# spec (1,000 steps, scaled_linear 0.0015 -> 0.0195, epsilon), DDIM sampling (50 steps, eta 0,
# x0 clipped to [-1, 1]).
_base_ = ['./simulated-fmri.py']

context_tokens, context_dim, time_embed_dim = 16, 64, 64       # time: 4 x the UNet's first width
encoder = dict(type='mmext.FMRIMAEEncoder', num_voxels={{_base_.num_voxels}}, patch_size=16,
               embed_dim=64, depth=2, num_heads=4, mlp_ratio=1.0)
unet = dict(type='mmext.Diffusers', cls='UNet2DConditionModel', from_config=dict(
    sample_size=32, in_channels=1, out_channels=1, block_out_channels=(16, 32, 64),
    layers_per_block=1, norm_num_groups=16, cross_attention_dim=context_dim,
    attention_head_dim=8, class_embed_type='identity',
    down_block_types=('DownBlock2D', 'DownBlock2D', 'CrossAttnDownBlock2D'),
    up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D', 'UpBlock2D')))
noise_schedule = dict(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195,
                      beta_schedule='scaled_linear', prediction_type='epsilon')
model = dict(
    type='mmext.CMVDM',
    encoder=encoder,
    conditioner=dict(type='mmext.FMRIConditioner', num_tokens={{_base_.num_patches}},
                     embed_dim=64,
                     context_tokens=context_tokens, context_dim=context_dim,
                     time_embed_dim=time_embed_dim),
    unet=unet,
    scheduler=dict(type='mmext.DiffusersScheduler', cls='DDPMScheduler',
                   from_config=noise_schedule),
    # pixel space: the predicted x0 is clipped to [-1, 1] at every step (DDPM's own sampler
    # does); without it the 1,000-iteration demo's samples diverge to +-10 (measured)
    sample_scheduler=dict(type='mmext.DiffusersScheduler', cls='DDIMScheduler',
                          from_config=dict(noise_schedule, clip_sample=True)),
    sampling=dict(num_steps=50, eta=0.0, num_samples=1, seed=0),
    data_preprocessor={{_base_.data_preprocessor}})
