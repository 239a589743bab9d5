# Real-valued SMCA-DETR R50, single scale, on COCO: DETR whose decoder cross-attention adds a
# Gaussian-like spatial prior around a box centre each object query predicts (per-head scales,
# beta 8), boxes regressed relative to that centre, focal classification loss
# (projects/qdetr/README.md, "SMCA-DETR"). The float model of Q-SMCA-DETR and its teacher:
# mmdet has no SMCA config or weights, so train this one with tools/train.py and keep the result
# as checkpoints/smca-detr_r50_8xb2-50e_coco.pth.
# Schedule of the SMCA paper's single-scale 50-epoch model (41.0 AP): batch 16 (8 GPUs x 2),
# AdamW lr 1e-4, backbone 1e-5, weight decay 1e-4, gradient clip 0.1 (DETR's, inherited from
# mmdet's DETR-R50 config), 50 epochs with lr x0.1 at 40.
_base_ = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
custom_imports = dict(imports=['mmext', 'projects.qdetr'], allow_failed_imports=False)

model = dict(
    type='mmext.SMCADETR',
    num_queries=300,  # the released SMCA code's setting [our reading]; DETR has 100
    decoder=dict(
        ref_point_layers=2,  # centre = sigmoid(MLP(object query)), shared by all layers
        layer_cfg=dict(
            beta=8.0,  # log G = -(d_w^2 / (beta s_w^2) + d_h^2 / (beta s_h^2)), in feature cells
            scales='per_head',  # (s_w, s_h) per head, predicted from each layer's query
            scale_init=1.0)),  # every scale starts at one feature cell [our choice]
    bbox_head=dict(
        type='ConditionalDETRHead',  # boxes relative to the centre; sigmoid classification
        loss_cls=dict(
            _delete_=True,
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])))

max_epochs = 50
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[40],
         gamma=0.1)
]

# The parameter groups paramwise_cfg makes (one per parameter) merged where their options are
# equal, and AdamW's fused update: one kernel per group instead of a launch per parameter, which
# a quantized model multiplies (a step size and a zero point per quantizer). The same options
# for every parameter (projects/qdetr/README.md, "Faster QAT on a CPU").
optim_wrapper = dict(constructor='mmext.MergedGroupsOptimWrapperConstructor',
                     optimizer=dict(fused=True))
# glibc malloc's thresholds fixed (tools/train.py applies them): the heap keeps up to 256 MiB of
# freed memory for the next step instead of giving it back and faulting it in again; a
# quantized model's step took thousands of page faults without it (README, "Page faults").
env_cfg = dict(malloc_cfg=dict(mmap_threshold=32 * 2**20, trim_threshold=256 * 2**20))
