# DCP-NAS retraining on ImageNet, step 1 of 2 (the released recipe): the
# searched cells with 1-bit activations and real-valued weights, 108 initial channels, 10 cells
# (the width and depth of the released script; which of the paper's S / M / L sizes that is,
# the release does not say), ImageNet stem; trained only on the KL to a real-valued ResNet-34
# teacher (no label loss), AdamW lr 1e-3 (x batch / 512), weight decay 1e-5, cosine, 256
# epochs, 64 per GPU x 8. Step 2 (..._step2) binarizes the weights too, starting from this
# run's last checkpoint.
# Two options of the released code are on: the depthwise convolutions of the separable and
# dilated operations see real-valued inputs (real_depthwise_input), and in step 2 the loss adds
# mu * L_R, the reconstruction of the 1-bit weights (reconstruction_weight; 0 here: step 1 has
# real weights). projects/dcpnas/README.md explains both.
#
# The genotype is the one your CIFAR-10 search wrote (configs/dcpnas/dcpnas_search_1xb64-50e_cifar10.py);
# point at another with --cfg-options model.classifier.backbone.genotype=<genotype.py>.
# The teacher is mmpretrain's ResNet-34 (config resnet34_8xb32_in1k) with its released weights
# in checkpoints/ (https://download.openmmlab.com/mmclassification/v0/resnet/
# resnet34_8xb32_in1k_20210831-f257d4e6.pth).
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64.py',
          'mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.dcpnas'], allow_failed_imports=False)

model = dict(
    type='mmext.DistilledClassifierWithReconstruction',
    reconstruction_weight=0.0,  # step 2: 5e-5
    classifier=dict(
        type='ImageClassifier',
        backbone=dict(
            type='mmext.DartsNetwork',
            genotype='work_dirs/dcpnas_search_1xb64-50e_cifar10/genotype.py',
            channels=108,
            num_cells=10,
            in_channels=3,
            binary='activations',  # step 2: True
            stem='imagenet',
            real_depthwise_input=True),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=1728,  # 4 x 432
                  loss=dict(type='CrossEntropyLoss'))),
    teacher=dict(config='mmpretrain::resnet/resnet34_8xb32_in1k.py',
                 checkpoint='checkpoints/resnet34_8xb32_in1k_20210831-f257d4e6.pth'),
    distill=dict(type='mmext.LogitDistillationLoss', temperature=1.0, loss_weight=1.0),
    label_loss_weight=0.0)

train_dataloader = dict(batch_size=64, num_workers=8)
val_dataloader = dict(batch_size=64, num_workers=8)

max_epochs = 256
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                        eta_min=0.0, convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=4)
auto_scale_lr = dict(base_batch_size=512)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=4, max_keep_ckpts=2))
