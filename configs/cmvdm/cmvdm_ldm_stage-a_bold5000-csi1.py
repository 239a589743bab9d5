# CMVDM stage A (semantic) on BOLD5000 CSI1 (the recipe: _base_/cmvdm_ldm_stage-a.py):
#   python tools/model_converters/mindvis_to_cmvdm.py <finetuned.pth> THIS_CONFIG \
#       checkpoints/mind-vis/cmvdm_init_bold5000-csi1.pth --vq-out checkpoints/mind-vis/vqvae
#   python tools/train.py configs/cmvdm/cmvdm_ldm_stage-a_bold5000-csi1.py
_base_ = ['./_base_/cmvdm_ldm_stage-a.py', './_base_/bold5000_csi1.py']

load_from = 'checkpoints/mind-vis/cmvdm_init_bold5000-csi1.pth'  # see the README
model = dict(encoder=dict(num_voxels={{_base_.num_voxels}}),
             conditioner=dict(num_tokens={{_base_.num_patches}}))
