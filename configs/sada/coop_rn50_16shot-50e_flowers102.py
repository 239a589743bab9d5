# CoOp (one shared context of 16 tokens), 16 shots (other counts: --cfg-options
# train_dataloader.dataset.num_shots=K), on flowers102: SADA's baseline on the same split and
# test images (_base_/datasets/flowers102.py), single-view training, the CLIP's own normalisation.
#   python tools/train.py configs/sada/coop_rn50_16shot-50e_flowers102.py
_base_ = ['./_base_/datasets/flowers102.py']

model = dict(
    _delete_=True, type='mmext.CoOpClassifier', num_context=16, clip={{_base_.clip}},
    class_names={{_base_.model.class_names}}, data_preprocessor={{_base_.clip_preprocessor}})
train_dataloader = dict(dataset=dict(pipeline={{_base_.test_pipeline_flip}}),
                        collate_fn=dict(type='pseudo_collate'))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader
custom_hooks = []
