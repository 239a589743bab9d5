# SADA's few-shot protocol on sun397, laid out as CoOp's DATASETS.md says:
# data/sun397/SUN397 and data/sun397/split_zhou_SUN397.json
# (CoOp's own split file). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/sun397', split_file='split_zhou_SUN397.json',
                image_dir='SUN397')
model = dict(num_shots=16, num_classes=397,
             class_names='data/sun397/split_zhou_SUN397.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
