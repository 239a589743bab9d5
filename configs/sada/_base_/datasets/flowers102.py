# SADA's few-shot protocol on flowers102, laid out as CoOp's DATASETS.md says:
# data/oxford_flowers/jpg and data/oxford_flowers/split_zhou_OxfordFlowers.json
# (CoOp's own split file). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/oxford_flowers', split_file='split_zhou_OxfordFlowers.json',
                image_dir='jpg')
model = dict(num_shots=16, num_classes=102,
             class_names='data/oxford_flowers/split_zhou_OxfordFlowers.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
