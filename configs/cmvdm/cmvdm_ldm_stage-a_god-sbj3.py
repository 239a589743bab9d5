# CMVDM stage A (semantic) on GOD subject 3 (the recipe: _base_/cmvdm_ldm_stage-a.py):
#   python tools/model_converters/mindvis_to_cmvdm.py <finetuned.pth> THIS_CONFIG \
#       checkpoints/mind-vis/cmvdm_init_god-sbj3.pth --vq-out checkpoints/mind-vis/vqvae
#   python tools/train.py configs/cmvdm/cmvdm_ldm_stage-a_god-sbj3.py
_base_ = ['./_base_/cmvdm_ldm_stage-a.py', './_base_/god_sbj3.py']

load_from = 'checkpoints/mind-vis/cmvdm_init_god-sbj3.pth'  # see the README
model = dict(encoder=dict(num_voxels={{_base_.num_voxels}}),
             conditioner=dict(num_tokens={{_base_.num_patches}}))
