# CMVDM demo, stage B, full: ControlNet hint = silhouette decoder + residual hint network
# (zero-initialised output, so training starts from the silhouette-only hint); the ControlNet
# and the residual network train (spec 10.5, 10.7). The benchmark's last row.
#   python tools/train.py configs/cmvdm/cmvdm_demo_stage-b_simulated-fmri.py
_base_ = ['./cmvdm_demo_stage-b-silhouette_simulated-fmri.py']

model = dict(residual=dict(type='mmext.ResidualHintNet', num_voxels={{_base_.num_voxels}},
                           out_channels=1, hidden=256, start_size=8, sizes=(16, 32),
                           channels=(16, 16)))
