# SADA's few-shot protocol on eurosat, laid out as CoOp's DATASETS.md says:
# data/eurosat/2750 and data/eurosat/split_zhou_EuroSAT.json
# (CoOp's own split file). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/eurosat', split_file='split_zhou_EuroSAT.json',
                image_dir='2750')
model = dict(num_shots=16, num_classes=10,
             class_names='data/eurosat/split_zhou_EuroSAT.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
