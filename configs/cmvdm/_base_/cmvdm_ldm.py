# CMVDM on MinD-Vis's latent diffusion model (spec 10.2-10.7): the 1-D MAE fMRI encoder (1024
# wide, depth 24, 16 heads, MLP ratio 1), its conditioner (77 context tokens of 512, the time
# condition added to the 768-d timestep embedding), the CompVis class-conditional LDM's UNet
# (192 channels x (1, 2, 3, 5), 2 res blocks, spatial transformers at downsample 2, 4, 8 with
# 32-channel heads, context 512) and VQ-f4 (latent 3 x 64 x 64) in the diffusers layout, made
# from MinD-Vis's fine-tuned checkpoint by tools/model_converters/ldm_to_diffusers.py.
# Schedule: 1,000 steps, scaled_linear 0.0015 -> 0.0195, epsilon, L2; PLMS (PNDM) 250 steps,
# 5 samples per fMRI. Child configs set the dataset (num_voxels) and the stage.
custom_imports = dict(imports=['mmext', 'projects.cmvdm'], allow_failed_imports=False)

checkpoints = 'checkpoints/mind-vis'        # where the converted folders are (users provide)
# VQ-f4 (CompVis vq-f4: ch 128 x (1, 2, 4), 2 res blocks, 3 latent channels, 8,192 codes) as a
# diffusers VQModel; tools/model_converters/mindvis_to_cmvdm.py --vq-out writes it from the
# checkpoint's first stage into {checkpoints}/vqvae
vq_f4 = dict(in_channels=3, out_channels=3, down_block_types=('DownEncoderBlock2D', ) * 3,
             up_block_types=('UpDecoderBlock2D', ) * 3, block_out_channels=(128, 256, 512),
             layers_per_block=2, latent_channels=3, num_vq_embeddings=8192, vq_embed_dim=3,
             norm_num_groups=32, sample_size=256)
noise_schedule = dict(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195,
                      beta_schedule='scaled_linear', prediction_type='epsilon')
model = dict(
    type='mmext.CMVDM',
    encoder=dict(type='mmext.FMRIMAEEncoder', num_voxels=None, patch_size=16,   # the dataset's
                 embed_dim=1024, depth=24, num_heads=16, mlp_ratio=1.0),
    conditioner=dict(type='mmext.FMRIConditioner', num_tokens=None, embed_dim=1024,  # patches
                     context_tokens=77, context_dim=512, time_embed_dim=768),
    # diffusers' `attention_head_dim` counts heads here: 32 channels each, per level
    unet=dict(type='mmext.Diffusers', cls='UNet2DConditionModel', from_config=dict(
        sample_size=64, in_channels=3, out_channels=3, block_out_channels=(192, 384, 576, 960),
        layers_per_block=2, cross_attention_dim=512, attention_head_dim=(6, 12, 18, 30),
        class_embed_type='identity',
        down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                          'CrossAttnDownBlock2D'),
        up_block_types=('CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                        'UpBlock2D'))),
    vae=dict(type='mmext.Diffusers', cls='VQModel', from_pretrained=checkpoints,
             subfolder='vqvae'),
    latent_scale=1.0,
    scheduler=dict(type='mmext.DiffusersScheduler', cls='DDPMScheduler',
                   from_config=noise_schedule),
    sample_scheduler=dict(type='mmext.DiffusersScheduler', cls='PNDMScheduler',
                          from_config=dict(noise_schedule, skip_prk_steps=True)),
    sampling=dict(num_steps=250, num_samples=5, seed=0),
    data_preprocessor=dict(type='BaseDataPreprocessor'))

# The judge of n-way identification: an ImageNet classifier as an mmpretrain config and
# checkpoint (MinD-Vis used torchvision's ViT-H/14; give the closest you have and name it).
judge = dict(config='checkpoints/judge/imagenet_classifier.py',
             checkpoint='checkpoints/judge/imagenet_classifier.pth', input_size=224)
val_evaluator = dict(type='mmext.ReconstructionMetric', judge=judge, n_way=(2, 50),
                     best_of_k=True, ssim_convention='rgb-255')
# Test adds FID on 2048-d Inception pool features (clean-fid's network and resizing, over every
# sample): the folder must hold clean-fid's inception-2015-12-05.pt.
test_evaluator = [val_evaluator,
                  dict(type='mmext.FrechetDistanceMetric', inception='checkpoints/clean-fid')]
