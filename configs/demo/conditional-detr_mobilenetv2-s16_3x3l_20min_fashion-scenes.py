# Demo detector of mmext: Conditional DETR on the Fashion Scenes canvases, sized for 2 CPU cores.
# The backbone is mmdet's MobileNetV2 initialised from the real ImageNet MobileNetV2
# (torchvision IMAGENET1K_V1, installed by `make install`), stride 16 (out_indices=(4,), 96 ch).
# Plain DETR does not converge in a CPU budget; Conditional DETR's conditional cross-attention does.
_base_ = 'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py'
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

# FashionScenesDataset is mmdet's CocoDataset with the 10 classes and clear errors for missing
# or damaged files.
dataset_type = 'mmext.FashionScenesDataset'
data_root = 'data/fashion_scenes/'
canvas_size = 128
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(canvas_size, canvas_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(canvas_size, canvas_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]

train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/images/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/images/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator

model = dict(
    num_queries=25,
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        out_indices=(4, ),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=dict(type='mmext.TorchvisionPretrained',
                      checkpoint='torchvision://mobilenet_v2')),
    neck=dict(in_channels=[96]),
    encoder=dict(num_layers=3),
    decoder=dict(num_layers=3),
    # sync_cls_avg_factor: under DDP the classification loss is normalised by the box count of
    # all processes, not each one's own (mmdet's default False made 2 processes with half
    # batches train differently from one: tests/test_ddp_parity.py); one process: no change
    bbox_head=dict(num_classes=10, sync_cls_avg_factor=True),
    test_cfg=dict(max_per_img=25))

# The CPU budget is time, so the schedule is in iterations: batch 8, about 0.63 s an iteration
# on 2 cores, 1600 iterations (3.2 epochs of the 4,000 train canvases) in about 17 minutes. The
# learning-rate drop for the last 20% is worth about +0.1 mAP.
max_iters = 1600
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=400)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1)
]
# The parameter groups paramwise_cfg makes (one per parameter) merged where their options are
# equal, and AdamW's fused update: one kernel per group instead of a launch per parameter, which
# a quantized model multiplies (a step size and a zero point per quantizer). The same options
# for every parameter (projects/qdetr/README.md, "Faster QAT on a CPU").
optim_wrapper = dict(constructor='mmext.MergedGroupsOptimWrapperConstructor',
                     optimizer=dict(lr=2e-4, fused=True))
# glibc malloc's thresholds fixed (tools/train.py applies them): the heap keeps up to 256 MiB of
# freed memory for the next step instead of giving it back and faulting it in again; a
# quantized model's step took thousands of page faults without it (README, "Page faults").
env_cfg = dict(malloc_cfg=dict(mmap_threshold=32 * 2**20, trim_threshold=256 * 2**20))
auto_scale_lr = dict(base_batch_size=8)

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=400, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
# mmdet's MobileNetV2 runs its stride-32 stages even when only stride 16 is used: their weights
# get no gradient, which DDP must be told about.
find_unused_parameters = True
