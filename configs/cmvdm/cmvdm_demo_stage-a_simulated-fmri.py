# CMVDM demo, stage A (semantic): conditioning + the CLIP alignment loss (weight 0.004, spec
# 10.3). The target is the demo CLIP's image embedding of the stimulus (grey to RGB, 96 px).
#   python tools/train.py configs/cmvdm/cmvdm_demo_stage-a_simulated-fmri.py
_base_ = ['./cmvdm_demo_stage-a-no-align_simulated-fmri.py']

model = dict(
    align_head=dict(type='mmext.CLIPAlignHead', context_tokens={{_base_.context_tokens}},
                    context_dim={{_base_.context_dim}}, clip_dim=256, hidden=512),
    align_loss=dict(type='mmext.CLIPAlignLoss', loss_weight=0.004),
    clip=dict(model_name='mmext:demo-clip'), clip_image_size=96)
