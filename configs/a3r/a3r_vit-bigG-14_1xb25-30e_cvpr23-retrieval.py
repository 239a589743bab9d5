# A3R on the CVPR 2023 foundation-model challenge's retrieval data (track 2), as the paper ran
# it: open_clip ViT-bigG-14 (laion2b_s39b_b160k) fully fine-tuned with the symmetric contrastive
# loss, then adaption re-ranking with k-reciprocal neighbourhoods. Data as the challenge ships it
# under data/cvpr23_retrieval:
#   train/train_label.txt        lines "image$attributes$caption" (attribute-augmented first:
#                                tools/a3r/attribute_augment.py ... train_label_augmented.txt)
#   train/train_images/
#   attributes.json              the attribute vocabulary (colours, types, brands; see
#                                projects/a3r/attributes.py), also the vehicle routing words
#   python tools/train.py configs/a3r/a3r_vit-bigG-14_1xb25-30e_cvpr23-retrieval.py
# Model selection on 5% of the training images carved off as validation (the released run chose
# its epoch with leaderboard feedback, i.e. on test data). The paper submitted the epoch-5
# checkpoint of a 30-epoch schedule: training images are web photos, test images surveillance
# frames. A labelled test file replaces test_dataloader.dataset.ann_file.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.a3r'], allow_failed_imports=False)

data_root = 'data/cvpr23_retrieval'
reranker = dict(type='mmext.AdaptionReRanker', num_adapt=5, k=10, variant='quantified')
model = dict(
    type='mmext.CLIPRetriever',
    clip=dict(model_name='ViT-bigG-14', pretrained='laion2b_s39b_b160k'),
    grad_checkpointing=True,  # the released run assumed an 80 GB GPU
    route_rerankers=dict(vehicle=dict(reranker, num_candidates=25),
                         person=dict(reranker, num_candidates=50)),
    flip_gallery=True,
    data_preprocessor=dict(type='MultiModalDataPreprocessor', mean=[122.771, 116.746, 104.094],
                           std=[68.501, 66.632, 70.323], to_rgb=True))  # OpenAI CLIP's

query = dict(
    type='mmext.QuerySuffix',
    routes=dict(vehicle=f'{data_root}/attributes.json'),
    suffixes=dict(vehicle='This image was taken by a traffic surveillance camera.'),
    default='person')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Pad', pad_to_square=True, pad_val=0),  # zero-padded to square, then 224
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs', algorithm_keys=('text', ), meta_keys=('image_id', 'text_id')),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Pad', pad_to_square=True, pad_val=0),
    dict(type='Resize', scale=(224, 224)),
    query,
    dict(type='PackInputs', algorithm_keys=('text', 'route', 'gt_text_id', 'gt_image_id'),
         meta_keys=('image_id', 'text_id')),
]
dataset = dict(type='mmext.TextImageRetrievalDataset', data_root=data_root,
               ann_file='train/train_label_augmented.txt', data_prefix='train/train_images')
train_dataloader = dict(
    batch_size=25,
    num_workers=8,
    dataset=dict(dataset, carve=dict(fraction=0.05, part='train', seed=0),
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    drop_last=True)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    dataset=dict(dataset, carve=dict(fraction=0.05, part='val', seed=0), test_mode=True,
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
val_evaluator = dict(type='mmext.TextImageRecall', topk=(1, 5, 10))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(type='AmpOptimWrapper',
                     optimizer=dict(type='AdamW', lr=4e-7, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10000),
    # 10,000 warm-up iterations are about 2 epochs at batch 25; cosine after them
    dict(type='CosineAnnealingLR', by_epoch=True, begin=2, end=30, T_max=28,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
val_cfg = dict(type='RetrievalValLoop')
test_cfg = dict(type='RetrievalTestLoop')
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3,
                                     save_best='t2i/retrieval/mAR', rule='greater'))
auto_scale_lr = dict(base_batch_size=25)
