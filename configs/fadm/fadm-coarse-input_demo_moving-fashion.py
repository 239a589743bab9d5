# FADM demo whose denoiser also sees the coarse frame (the benchmark's diagnosis row, not the
# paper's design): the UNet takes concat(condition, coarse, x_t), 3 channels. FADM's denoiser
# sees the coarse frame only through AGCN's condition image; this row measures whether that is
# where the refined frames lose to the coarse ones. Everything else is the demo's.
#   python tools/train.py configs/fadm/fadm-coarse-input_demo_moving-fashion.py
_base_ = ['./fadm_demo_moving-fashion.py']

model = dict(denoiser_sees_coarse=True, unet=dict(from_config=dict(in_channels=3)))
