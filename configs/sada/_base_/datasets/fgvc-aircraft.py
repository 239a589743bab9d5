# SADA's few-shot protocol on fgvc-aircraft, laid out as CoOp's DATASETS.md says:
# data/fgvc_aircraft/images and data/fgvc_aircraft/split_zhou_FGVCAircraft.json
# (written by tools/data/make_coop_split.py fgvc-aircraft from its images_variant_*.txt lists). Children set the shot count.
_base_ = ['../fewshot_rn50.py']

few_shot = dict(type='mmext.FewShotDataset', data_root='data/fgvc_aircraft', split_file='split_zhou_FGVCAircraft.json',
                image_dir='images')
model = dict(num_shots=16, num_classes=100,
             class_names='data/fgvc_aircraft/split_zhou_FGVCAircraft.json')  # names read on first use
train_dataloader = dict(dataset=dict(few_shot, split='train', num_shots=16, seed=1,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(few_shot, split='test', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
