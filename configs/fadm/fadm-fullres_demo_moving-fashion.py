# FADM demo with a full-resolution warp scale (the benchmark's diagnosis row, not the paper's
# design): AGCN's warp branch at 4 / 8 / 16 / 32 of 32 (K = 4). The paper's scales stop at half
# the frame (128 of 256), so the denoiser never sees the coarse frame at full resolution; this
# row measures whether that is where the refined frames lose to the coarse ones.
#   python tools/train.py configs/fadm/fadm-fullres_demo_moving-fashion.py
_base_ = ['./fadm_demo_moving-fashion.py']

model = dict(agcn=dict(scales=(4, 8, 16, 32)))
