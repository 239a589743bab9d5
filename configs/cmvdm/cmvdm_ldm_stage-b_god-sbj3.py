# CMVDM stage B (control) on god-sbj3: a ControlNet copied from the stage-A UNet (hint
# convolutions 16 / 32 / 96 / 256 from the 512 px hint down to the 64 x 64 latent, zero
# convolutions), hint = frozen silhouette decoder + residual network; only the ControlNet and the
# residual network train, L_LDM only, batch 32 (spec 10.5, 10.7).
#   python tools/train.py configs/cmvdm/silhouette_encoder_god-sbj3.py
#   python tools/train.py configs/cmvdm/silhouette_decoder_god-sbj3.py
#   python tools/train.py configs/cmvdm/cmvdm_ldm_stage-b_god-sbj3.py
_base_ = ['./cmvdm_ldm_stage-a_god-sbj3.py']

# stage A's best val checkpoint: mmengine names it best_recon_2way_top1_epoch_N.pth; link it
#   ln -s best_recon_2way_top1_epoch_N.pth work_dirs/cmvdm_ldm_stage-a_god-sbj3/best.pth
# or pass --cfg-options load_from=...
load_from = 'work_dirs/cmvdm_ldm_stage-a_god-sbj3/best.pth'
model = dict(
    controlnet=dict(conditioning_channels=3,
                    conditioning_embedding_out_channels=(16, 32, 96, 256)),
    silhouette=dict(type='mmext.SilhouetteDecoder', num_voxels={{_base_.num_voxels}},
                    out_channels=3, channels=64, start_size=14, num_up=3, out_size=512,
                    groups=32),
    silhouette_checkpoint='work_dirs/silhouette_decoder_god-sbj3/epoch_150.pth',
    residual=dict(type='mmext.ResidualHintNet', num_voxels={{_base_.num_voxels}},
                  out_channels=3, hidden=1024, start_size=32, sizes=(64, 256, 512),
                  channels=(32, 64, 64)),
    trainable=[r'controlnet\.', r'residual\.'],
    align_head=None, clip=None)   # stage B's loss is L_LDM alone: no CLIP to load
train_dataloader = dict(batch_size=32)
