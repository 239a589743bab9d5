# SADA's few-shot protocol on ucf101, laid out as CoOp's DATASETS.md says:
# data/ucf101/UCF-101-midframes and data/ucf101/split_zhou_UCF101.json
# (CoOp's own split file). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/ucf101', split_file='split_zhou_UCF101.json',
                image_dir='UCF-101-midframes')
model = dict(num_shots=16, num_classes=101,
             class_names='data/ucf101/split_zhou_UCF101.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
