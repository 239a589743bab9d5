# CMVDM stage A (semantic) on MinD-Vis's LDM, shared by the data sets: from MinD-Vis's
# fine-tuned checkpoint (converted by tools/model_converters/mindvis_to_cmvdm.py: UNet, fMRI
# encoder and conditioner as load_from, VQ-f4 as a diffusers folder with --vq-out), train the
# fMRI encoder and conditioner (with the time condition), the alignment head, and the UNet's
# cross-attention and the norms before it; loss L_LDM + 0.004 L_align; AdamW lr 5.3e-5, batch
# 24 (the data set's loader), gradient clip 0.5, up to 500 epochs, the best val checkpoint kept
# (never the test set). The CLIP target: ViT-B/32 (local weights). A data-set config adds its
# data base, num_voxels / num_tokens and load_from.
_base_ = ['./cmvdm_ldm.py', 'mmpretrain::_base_/default_runtime.py']

model = dict(
    align_head=dict(type='mmext.CLIPAlignHead', context_tokens=77, context_dim=512,
                    clip_dim=512, hidden=1024, num_layers=5),
    align_loss=dict(type='mmext.CLIPAlignLoss', loss_weight=0.004),
    clip=dict(model_name='ViT-B-32', pretrained='checkpoints/clip/ViT-B-32.pt'),
    clip_image_size=224,
    trainable=[r'encoder\.', r'conditioner\.', r'align_head\.', r'unet\..*\.attn2\.',
               r'unet\..*transformer_blocks\.\d+\.norm2\.'])
max_epochs = 500
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5.3e-5, weight_decay=0.01),
                     clip_grad=dict(max_norm=0.5))
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
val_cfg, test_cfg = dict(), dict()
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='recon/2way_top1',
                                     rule='greater'))
