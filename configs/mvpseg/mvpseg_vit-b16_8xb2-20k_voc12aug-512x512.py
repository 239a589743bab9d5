# MVP-SEG, Pascal VOC 2012 (aug), zero-shot split of ZegCLIP: 15 seen / 5 unseen classes,
# background ignored (not a class), inductive. Reference (ZegCLIP, ViT-B/16, inductive):
# mIoU seen 91.9 / unseen 77.8 / hIoU 84.3.
_base_ = [
    'mmseg::_base_/datasets/pascal_voc12.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/mvpseg_vit-b16.py',
    './_base_/mvpseg_schedule.py',
]
custom_imports = dict(imports=['mmext', 'projects.mvpseg'], allow_failed_imports=False)

classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
           'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
           'train', 'tvmonitor')
unseen = ['pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor']
class_texts = {'diningtable': 'dining table', 'pottedplant': 'potted plant',
               'tvmonitor': 'tv monitor'}
metainfo = dict(classes=classes)  # background -> 255 through mmseg's label map

model = dict(decode_head=dict(class_names=classes, unseen_classes=unseen,
                              class_texts=class_texts))

data_root = 'data/VOCdevkit/VOC2012'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
voc = dict(type='PascalVOCDataset', data_root=data_root, metainfo=metainfo,
           pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=2,
    dataset=dict(_delete_=True, type='ConcatDataset', datasets=[
        dict(voc, data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
             ann_file='ImageSets/Segmentation/train.txt'),
        dict(voc, data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
             ann_file='ImageSets/Segmentation/aug.txt'),
    ]))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='mmext.OpenVocabIoUMetric', unseen_classes=unseen,
                     setting='inductive')
test_evaluator = val_evaluator

param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=20000,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=4000)
