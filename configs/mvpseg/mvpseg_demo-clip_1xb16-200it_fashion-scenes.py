# MVP-SEG on the Fashion Scenes canvases with the demo CLIP (a stand-in: no CLIP weights can be
# had here). 'mmext:demo-clip' is the cached demo CLIP v2, built on first use (about 8 min on 2
# CPU cores; `make demo-clip` builds it ahead): pretrained on captions of Fashion-MNIST train
# items of all 10 classes; these canvases hold test items only.
# Multi-view prompts (K = 3) + OCLoss + global prompt refining, trained on 7 seen Fashion-MNIST
# classes; evaluated over all 10 names: mIoU seen / unseen / hIoU.
#   python tools/train.py configs/mvpseg/mvpseg_demo-clip_1xb16-200it_fashion-scenes.py
_base_ = ['mmseg::_base_/default_runtime.py', './_base_/mvpseg_schedule.py']
custom_imports = dict(imports=['mmext', 'projects.mvpseg'], allow_failed_imports=False)

# The 10 Fashion-MNIST classes; background pixels are ignored in training and evaluation, as in
# the VOC protocol of ZegCLIP (mmseg's label map turns label 0 into 255 and shifts the rest).
class_names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
               'Sneaker', 'Bag', 'Ankle boot']
unseen_classes = ['Pullover', 'Sandal', 'Bag']  # the other 7 are seen
metainfo = dict(classes=class_names)
input_size = (256, 256)  # canvases are 128 x 128; 256 gives the 16 x 16 grid of the stride-16 tower

model = dict(
    type='mmext.MVPSegmentor',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=input_size),
    clip=dict(type='mmext.OpenCLIPModel', model_name='mmext:demo-clip'),
    decode_head=dict(
        type='mmext.MVPSegHead',
        class_names=class_names,
        unseen_classes=unseen_classes,
        in_channels=256,
        num_prompts=3,
        num_context=8,  # 16 in the real configs; 8 keeps the MiniLM passes cheap on a CPU
        merge='mean',
        oc_loss=dict(type='mmext.OrthogonalConstraintLoss', loss_weight=0.1),
        gpr=dict(loss=dict(type='mmext.GlobalPromptLoss', loss_weight=1.0), threshold=0.01),
        setting='inductive',
        # used only with learn_prompts=False (the zero-shot baseline): the zero_shot_templates
        # of mmext/datasets/fashion_vocabulary.json, as the demo CLIP's card uses them
        templates=['a photo of a {}.', 'a {}.', 'a picture of a {}.', 'a photo of the {}.'],
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    test_cfg=dict(mode='whole'))

dataset_type = 'mmext.FashionScenesSegDataset'
data_root = 'data/fashion_scenes/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=input_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=input_size, keep_ratio=False),
    dict(type='LoadAnnotations'),  # after Resize: labels stay at 128 x 128 for the metric
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='train/images', seg_map_path='train/labels'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='val/images', seg_map_path='val/labels'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmext.OpenVocabIoUMetric', unseen_classes=unseen_classes,
                     setting='inductive')
test_evaluator = val_evaluator

param_scheduler = [dict(type='CosineAnnealingLR', T_max=200, eta_min=1e-5, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=200)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=200, max_keep_ckpts=1))
