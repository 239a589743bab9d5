# The training recipe of Bi-ViT's DeiT-Base runs (bivit_deit-base_16xb64-300e_in1k.py and its
# children): mmpretrain's DeiT-Base config with the settings Bi-ViT's code takes from DeiT
# where mmpretrain's differ. Checked against the paper's recipe by
# tests/test_paper_schedules.py.
_base_ = 'mmpretrain::deit/deit-base_16xb64_in1k.py'

# 5 linear warm-up epochs (mmpretrain's ImageNet AdamW schedule has 20), then cosine to 300.
warmup_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs)]
