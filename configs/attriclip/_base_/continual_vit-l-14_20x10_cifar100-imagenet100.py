# Cross-dataset continual learning (CDCL): CIFAR-100 in 10 tasks of 10 classes, then
# ImageNet-100 in 10 tasks of 10, one sequence of 20 tasks on the frozen OpenAI CLIP ViT-L/14.
# Class names both datasets share are merged (MergedClassDataset: one candidate per name);
# tasks are cut by each dataset's own classes (split_key='source_label'), so ImageNet-100's
# images of a shared class are learned in an ImageNet task under the merged label. Class
# order: seed 1993, drawn within CIFAR-100's classes, then within ImageNet-100's.
# Data and schedule as the CIFAR-100 and ImageNet-100 bases.
_base_ = ['./continual_vit-l-14_10x10_cifar100.py']

data_preprocessor = dict(to_rgb=True)  # ImageNet files load as BGR; CIFAR arrays are reversed
num_tasks = 20
epochs_per_task = 10
cifar = dict(type='CIFAR100', data_root='data/cifar100', download=False)
imagenet100 = dict(type='CustomDataset', data_root='data/imagenet100',
                   metainfo=dict(classes='data/imagenet100/meta/classes.txt'))
clip_view = [
    dict(type='ResizeEdge', scale=224, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
]
flip = [dict(type='RandomFlip', prob=0.5, direction='horizontal')]
pack = [dict(type='PackInputs')]
to_bgr = [dict(type='mmext.ReverseChannels')]
load = [dict(type='LoadImageFromFile')]
sequence = dict(type='mmext.ClassIncrementalDataset', classes_per_task=10,
                class_order_seed=1993, class_order_blocks=[100, 100],
                split_key='source_label')
train_dataloader = dict(dataset=dict(
    _delete_=True, **sequence, subset='task', dataset=dict(
        type='mmext.MergedClassDataset', datasets=[
            dict(**cifar, split='train', pipeline=to_bgr + clip_view + flip + pack),
            dict(**imagenet100, ann_file='meta/train.txt', data_prefix='train',
                 pipeline=load + clip_view + flip + pack)])))
val_dataloader = dict(dataset=dict(
    _delete_=True, **sequence, subset='seen', dataset=dict(
        type='mmext.MergedClassDataset', datasets=[
            dict(**cifar, split='test', pipeline=to_bgr + clip_view + pack),
            dict(**imagenet100, ann_file='meta/val.txt', data_prefix='val',
                 pipeline=load + clip_view + pack)])))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='CosineRestartLR', by_epoch=True, periods=[epochs_per_task] * num_tasks,
         restart_weights=[1.0] * num_tasks, eta_min_ratio=1e-3),
]
