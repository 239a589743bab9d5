# FADM's demo data: moving Fashion-MNIST (mmext/datasets/moving_fashion.py). A source and a
# driving frame show one item under two known poses (rotation, scale, translation) and a known
# non-rigid "expression" warp, 32 x 32 grey; their 6 parameters are the attributes. Train:
# 20,000 random pairs of training items; val: 10 sequences of 4 frames of held-out training
# items; test: 20 sequences of 6 frames of test items (2 per class), the driving pose on a
# straight path (sampling every frame costs 100 denoising steps on this CPU).
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext', 'projects.fadm'], allow_failed_imports=False)

data = dict(type='mmext.MovingFashionDataset', seed=0)
train_dataloader = dict(
    batch_size=32, num_workers=1, drop_last=True,
    dataset=dict(**data, split='train', num_pairs=20000),
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=40, num_workers=1,
    dataset=dict(**data, split='val', num_sequences=10, sequence_length=4),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
test_dataloader = dict(
    batch_size=40, num_workers=1,
    dataset=dict(**data, split='test', num_sequences=20, sequence_length=6),
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
val_evaluator = dict(type='mmext.AnimationMetric')
test_evaluator = val_evaluator
data_preprocessor = dict(type='BaseDataPreprocessor')
randomness = dict(seed=0)
# iteration-based; each config sets max_iters, val_interval and the checkpoint interval
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=1000)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=1),
                     logger=dict(interval=100))
log_processor = dict(by_epoch=False)
