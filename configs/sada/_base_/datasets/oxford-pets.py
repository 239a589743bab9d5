# SADA's few-shot protocol on oxford-pets, laid out as CoOp's DATASETS.md says:
# data/oxford_pets/images and data/oxford_pets/split_zhou_OxfordPets.json
# (CoOp's own split file). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/oxford_pets', split_file='split_zhou_OxfordPets.json',
                image_dir='images')
model = dict(num_shots=16, num_classes=37,
             class_names='data/oxford_pets/split_zhou_OxfordPets.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
