# Class-incremental ImageNet-100, 10 tasks of 10 classes, on the frozen OpenAI CLIP ViT-L/14
# (class order seed 1993, 10 epochs per task, the spec's SGD schedule; see the CIFAR-100 base).
# Data, as ImageNet-100 users keep it (the 100-class subset of UCIR / PODNet):
#   data/imagenet100/train/<wnid>/*.JPEG, data/imagenet100/val/<wnid>/*.JPEG
#   data/imagenet100/meta/train.txt, meta/val.txt   "<wnid>/<file> <class id>" per line
#   data/imagenet100/meta/classes.txt                one readable class name per line, id order
_base_ = ['./continual_vit-l-14_10x10_cifar100.py']

data_preprocessor = dict(to_rgb=True)  # image files load as BGR
classes_file = 'data/imagenet100/meta/classes.txt'
imagenet100 = dict(type='CustomDataset', data_root='data/imagenet100',
                   metainfo=dict(classes=classes_file))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=224, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=224, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(dataset=dict(
    _delete_=True, **imagenet100, ann_file='meta/train.txt', data_prefix='train',
    pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(dataset=dict(
    _delete_=True, **imagenet100, ann_file='meta/val.txt', data_prefix='val',
    pipeline=test_pipeline)))
test_dataloader = val_dataloader
