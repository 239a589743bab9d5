# The real-valued teacher of the Bi-ViT miniature (benchmarks/bivit_ablation.py): a ViT small
# enough for a 2-core CPU (4 layers, embed 64, 2 heads of 32, MLP 128; patch 4 on 28 x 28:
# 49 patches + the class token, so each query ranks 50 keys), 10 epochs.
_base_ = './deit-tiny-p4_1xb128-20e_fashion-mnist.py'

model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=64, num_layers=4, num_heads=2,
                            feedforward_channels=128),
                  drop_path_rate=0.0),
    head=dict(in_channels=64))

max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
