# Real-valued DETR-R50 on Pascal VOC 07+12 (trainval) with DETR's augmentation, evaluated on VOC
# 2007 test (AP50, mmdet's VOCMetric): the float model Q-DETR's VOC rows start from, and with
# R101 (detr_r101_8xb2-300e_voc0712.py) the teacher. mmdet has no DETR VOC config or weights:
# train these with tools/train.py. Schedule from the paper: 300 epochs, lr x0.1 at 200.
_base_ = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit/'
voc_train = [
    dict(type=dataset_type, data_root=data_root,
         ann_file=f'{year}/ImageSets/Main/trainval.txt',
         data_prefix=dict(sub_data_root=f'{year}/'),
         filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
         pipeline={{_base_.train_pipeline}})
    for year in ('VOC2007', 'VOC2012')
]
train_dataloader = dict(dataset=dict(
    _delete_=True, type='ConcatDataset', ignore_keys=['dataset_type'], datasets=voc_train))
val_dataloader = dict(dataset=dict(
    _delete_=True, type=dataset_type, data_root=data_root,
    ann_file='VOC2007/ImageSets/Main/test.txt', data_prefix=dict(sub_data_root='VOC2007/'),
    test_mode=True, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator

model = dict(bbox_head=dict(num_classes=20))

max_epochs = 300
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[200],
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
