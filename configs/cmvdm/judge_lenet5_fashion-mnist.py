# The judge of the CMVDM demo's n-way identification: LeNet-5 (mmpretrain's) on Fashion-MNIST
# train at 32 x 32 (items padded by 2 pixels, as the simulated stimuli are), 3 epochs:
#   python tools/train.py configs/cmvdm/judge_lenet5_fashion-mnist.py
# Its test accuracy is printed at the end (the README quotes it).
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(type='ImageClassifier', backbone=dict(type='LeNet5', num_classes=10),
             head=dict(type='ClsHead', loss=dict(type='CrossEntropyLoss')),
             data_preprocessor=dict(type='ClsDataPreprocessor', mean=[72.9], std=[90.0]))
pipeline = [dict(type='Pad', size=(32, 32)), dict(type='PackInputs')]
train_dataloader = dict(batch_size=128, num_workers=1,
                        dataset=dict(type='mmext.FashionMNIST', split='train', pipeline=pipeline),
                        sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(batch_size=500, num_workers=1,
                      dataset=dict(type='mmext.FashionMNIST', split='test', pipeline=pipeline),
                      sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader, test_evaluator = val_dataloader, val_evaluator
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=3)
val_cfg, test_cfg = dict(), dict()
default_hooks = dict(checkpoint=dict(interval=3), logger=dict(interval=100))
randomness = dict(seed=0)
