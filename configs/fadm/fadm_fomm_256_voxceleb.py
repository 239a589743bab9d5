# FADM on FOMM (production): VoxCeleb at 256 x 256, FOMM's released vox-256 weights as the frozen
# coarse animator (same animator in training and test), AGCN at the paper's sizes (low-pass 32,
# warp scales 32 / 64 / 128, 16 channels), the SR3-style denoiser (UNet2DModel, 6 channels in,
# 64 x (1, 2, 4, 4, 8, 8), 3 blocks per level, self-attention at 16 x 16), DDPM 100 steps linear
# 1e-3 -> 0.2 (epsilon, no x0 clipping), mean L1 + the feature loss; Adam 2e-4 betas (0, 0.9),
# batch 5, 100 epochs over 75 frame pairs per training video (FOMM's x75 repeat); test: DDIM eta 1
# over all 100 steps, one noise per video (spec 11).
# Attributes: DECA's expression (50) and pose (6) from its released coarse encoder (spec 11.1;
# fadm_fomm-mediapipe_256_voxceleb.py uses MediaPipe's 9 where DECA's file is not at hand).
# FOMM's augmentation (vox-256.yaml: horizontal flip, colour jitter 0.1) on the training pairs;
# the flip reads the attributes measured on mirrored frames (--mirrored). Metrics include CSIM
# with insightface's ArcFace r100.
#   python tools/data/cache_face_attributes.py data/vox-png data/vox-png/attributes_deca.npz \
#       --extractor deca --deca-checkpoint checkpoints/deca/deca_model.tar --mirrored
#   python tools/train.py configs/fadm/fadm_fomm_256_voxceleb.py
#   python tools/test.py configs/fadm/fadm_fomm_256_voxceleb.py work_dirs/.../epoch_100.pth
_base_ = ['mmpretrain::_base_/default_runtime.py', './_base_/fadm_diffusion.py']
custom_imports = dict(imports=['mmext', 'projects.fadm'], allow_failed_imports=False)

data_root = 'data/vox-png'
attributes = dict(attributes_file=data_root + '/attributes_deca.npz', num_attributes=56)
model = dict(
    animator=dict(type='mmext.FOMMAnimator', checkpoint='checkpoints/fomm/vox-cpk.pth.tar'),
    agcn=dict(type='mmext.AGCN', in_channels=3, num_attributes=56, image_size=256,
              lowpass_size=32, scales=(32, 64, 128), channels=16, time_dim=64),
    unet=dict(type='mmext.Diffusers', cls='UNet2DModel', from_config=dict(
        sample_size=256, in_channels=6, out_channels=3,
        block_out_channels=(64, 128, 256, 256, 512, 512), layers_per_block=3,
        down_block_types=('DownBlock2D', 'DownBlock2D', 'DownBlock2D', 'DownBlock2D',
                          'AttnDownBlock2D', 'DownBlock2D'),
        up_block_types=('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D', 'UpBlock2D',
                        'UpBlock2D'))))
train_dataloader = dict(
    batch_size=5, num_workers=4, drop_last=True,
    dataset=dict(type='mmext.VoxCelebPairDataset', data_root=data_root, split='train',
                 pairs_per_video=75, horizontal_flip=True,
                 colour_jitter=dict(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1),
                 **attributes),
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'))
test_dataloader = dict(
    batch_size=8, num_workers=4,
    dataset=dict(type='mmext.VoxCelebPairDataset', data_root=data_root, split='test',
                 **attributes),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
# L1 / PSNR / SSIM / LPIPS / temporal error, AKD / MKR / AED with MediaPipe's landmarks, CSIM
# (ArcFace against the source), FID; every figure for the coarse frames beside the refined ones.
# LPIPS, CSIM and FID read local files.
test_evaluator = [
    dict(type='mmext.AnimationMetric', lpips_alexnet='checkpoints/alexnet-owt-7be5be79.pth'),
    dict(type='mmext.FaceMotionMetric'),
    dict(type='mmext.IdentitySimilarityMetric', depth='r100',
         arcface='checkpoints/arcface/ms1mv3_arcface_r100_fp16/backbone.pth'),
    dict(type='mmext.FrechetDistanceMetric', inception='checkpoints/clean-fid')]
val_dataloader = val_evaluator = val_cfg = None
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-4, betas=(0.0, 0.9)))
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=100)
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
randomness = dict(seed=0)
