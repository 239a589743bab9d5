# A3R's retriever on the Fashion Scenes retrieval set with the demo CLIP, through the stock
# mmpretrain runner (RetrievalValLoop / RetrievalTestLoop, Recall@1/5/10 and mAR):
#   make data && python tools/data/make_fashion_retrieval.py
#   python tools/train.py configs/a3r/a3r_demo-clip_1xb32-5e_fashion-retrieval.py
#   python tools/test.py configs/a3r/a3r_demo-clip_1xb32-5e_fashion-retrieval.py CHECKPOINT
# Fine-tuning: the whole demo CLIP with the symmetric contrastive loss (ClipLoss), AdamW, linear
# warm-up then cosine, 5 epochs of 93 iterations (about 1.3 s each on 2 CPU cores). Evaluation: 500 val captions against the 500 val canvases, stage 1 only
# (the re-ranking variants are the children *_adapt.py, *_adapt-krecip.py, *_adapt-jaccard.py,
# which evaluate a checkpoint of this config).
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.a3r'], allow_failed_imports=False)

model = dict(
    type='mmext.CLIPRetriever',
    clip=dict(model_name='mmext:demo-clip'),
    flip_gallery=True,  # no reranker: stage 1 (children add AdaptionReRanker)
    data_preprocessor=dict(type='MultiModalDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True))  # the demo CLIP's

dataset_type = 'mmext.TextImageRetrievalDataset'
data_root = 'data/fashion_retrieval'
image_prefix = 'data/fashion_scene_items'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96)),
    dict(type='PackInputs', algorithm_keys=('text', ), meta_keys=('image_id', 'text_id')),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96)),
    dict(type='PackInputs', algorithm_keys=('text', 'gt_text_id', 'gt_image_id'),
         meta_keys=('image_id', 'text_id')),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(type=dataset_type, ann_file=f'{data_root}/train_label.txt',
                 data_prefix=image_prefix, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),  # a (B, 3, H, W) batch for MultiModalDataPreprocessor
    drop_last=True)
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    dataset=dict(type=dataset_type, ann_file=f'{data_root}/val_label.txt',
                 data_prefix=image_prefix, test_mode=True, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
val_evaluator = dict(type='mmext.TextImageRecall', topk=(1, 5, 10))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=5, T_max=4),
]
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=5)
val_cfg = dict(type='RetrievalValLoop')
test_cfg = dict(type='RetrievalTestLoop')
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=1,
                                     save_best='t2i/retrieval/mAR', rule='greater'),
                     logger=dict(interval=20))
randomness = dict(seed=0)
