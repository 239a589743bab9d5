# SADA's few-shot protocol on stanford-cars, laid out as CoOp's DATASETS.md says:
# data/stanford_cars/<the paths of the split file> and data/stanford_cars/split_zhou_StanfordCars.json
# (CoOp's own split file). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/stanford_cars', split_file='split_zhou_StanfordCars.json',
                image_dir='')
model = dict(num_shots=16, num_classes=196,
             class_names='data/stanford_cars/split_zhou_StanfordCars.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
