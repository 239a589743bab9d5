# Class-incremental CIFAR-100, 10 tasks of 10 classes, on the frozen OpenAI CLIP ViT-L/14, as
# AttriCLIP's paper runs it (spec: ../shared/docs/methods.md section 6.3):
# - class order: np.random.RandomState(1993).permutation(100) (the iCaRL convention), cut in
#   tens; task t trains on its 10 classes only; after it, the CIFAR-100 test images of all
#   classes seen so far are classified among all of them (ContinualAccuracy);
# - SGD, lr 1e-3 * batch / 20 (batch 32), a cosine towards lr * 1e-3 restarted in every task,
#   no warm-up, no weight decay, 10 epochs per task. The cosine is stepped per epoch (tasks of
#   different sizes keep their restarts aligned), so a task's last epoch runs at 0.025 x lr,
#   not the 1e-3 x lr a per-iteration cosine would end at.
# Data: data/cifar100/cifar-100-python/ (the python version from the CIFAR site, unpacked);
# weights: open_clip's 'openai' ViT-L-14 (fetched into its cache; offline, give the file path
# as clip.pretrained).
_base_ = ['mmpretrain::_base_/default_runtime.py', './cifar100_classes.py']
custom_imports = dict(imports=['mmext', 'projects.attriclip'], allow_failed_imports=False)

clip = dict(model_name='ViT-L-14', pretrained='openai')
data_preprocessor = dict(type='ClsDataPreprocessor', mean=[122.771, 116.746, 104.094],
                         std=[68.501, 66.632, 70.323], to_rgb=False)  # CIFAR arrays are RGB

class_order_seed = 1993
num_tasks = 10
epochs_per_task = 10
batch_size = 32
sequence = dict(type='mmext.ClassIncrementalDataset', classes_per_task=10,
                class_order_seed=class_order_seed)
train_pipeline = [
    dict(type='ResizeEdge', scale=224, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='ResizeEdge', scale=224, edge='short', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
cifar = dict(type='CIFAR100', data_root='data/cifar100', download=False)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    dataset=dict(**sequence, subset='task',
                 dataset=dict(**cifar, split='train', pipeline=train_pipeline)),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=100,
    num_workers=4,
    dataset=dict(**sequence, subset='seen',
                 dataset=dict(**cifar, split='test', pipeline=test_pipeline)),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='mmext.ContinualAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=1e-3 * batch_size / 20, momentum=0.9,
                                    weight_decay=0.0))
param_scheduler = [
    dict(type='CosineRestartLR', by_epoch=True, periods=[epochs_per_task] * num_tasks,
         restart_weights=[1.0] * num_tasks, eta_min_ratio=1e-3),
]
train_cfg = dict(type='mmext.ClassIncrementalLoop', epochs_per_task=epochs_per_task)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=epochs_per_task, max_keep_ckpts=2),
                     logger=dict(interval=50))
randomness = dict(seed=0)
