# SADA's few-shot protocol on imagenet, laid out as CoOp's DATASETS.md says:
# data/imagenet/images and data/imagenet/split_zhou_ImageNet.json
# (written by tools/data/make_coop_split.py imagenet; CoOp keeps no split file for it). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/imagenet', split_file='split_zhou_ImageNet.json',
                image_dir='images')
model = dict(num_shots=16, num_classes=1000,
             class_names='data/imagenet/split_zhou_ImageNet.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
