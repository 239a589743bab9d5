# The training recipe of Bi-ViT's DeiT-Small runs (bivit_deit-small_4xb256-300e_in1k.py and its
# children): mmpretrain's DeiT-Small config with the settings Bi-ViT's code takes from DeiT
# where mmpretrain's differ. Checked against the paper's recipe by
# tests/test_paper_schedules.py.
_base_ = 'mmpretrain::deit/deit-small_4xb256_in1k.py'
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

# DeiT's drop-path 0.1 (mmpretrain's small and tiny DeiT configs remove it).
model = dict(backbone=dict(drop_path_rate=0.1))

# 5 linear warm-up epochs (mmpretrain's ImageNet AdamW schedule has 20), then cosine to 300.
warmup_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs)]

# The parameter groups paramwise_cfg makes (one per parameter) merged where their options are
# equal, and AdamW's fused update: one kernel per group instead of a launch per parameter, which
# a binarized model multiplies (its binarizers' scales and zero points). The same options for
# every parameter (projects/bivit/README.md, "Faster training on a CPU").
optim_wrapper = dict(constructor='mmext.MergedGroupsOptimWrapperConstructor',
                     optimizer=dict(fused=True))
# glibc malloc's thresholds fixed (tools/train.py applies them): the heap keeps up to 256 MiB of
# freed memory for the next step instead of giving it back and faulting it in again; a
# quantized model's step took thousands of page faults without it (README, "Page faults").
env_cfg = dict(malloc_cfg=dict(mmap_threshold=32 * 2**20, trim_threshold=256 * 2**20))
