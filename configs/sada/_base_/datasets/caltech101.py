# SADA's few-shot protocol on caltech101, laid out as CoOp's DATASETS.md says:
# data/caltech-101/101_ObjectCategories and data/caltech-101/split_zhou_Caltech101.json
# (CoOp's own split file). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/caltech-101', split_file='split_zhou_Caltech101.json',
                image_dir='101_ObjectCategories')
model = dict(num_shots=16, num_classes=100,
             class_names='data/caltech-101/split_zhou_Caltech101.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
