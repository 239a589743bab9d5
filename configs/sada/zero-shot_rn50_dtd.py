# Zero-shot CLIP RN50 ("a photo of a {}."; nothing trains), on dtd: SADA's baseline on the same split and
# test images (_base_/datasets/dtd.py), single-view training, the CLIP's own normalisation.
#   python tools/test.py configs/sada/zero-shot_rn50_dtd.py none
_base_ = ['./_base_/datasets/dtd.py']

model = dict(
    _delete_=True, type='mmext.ZeroShotCLIPClassifier', templates=['a photo of a {}.'], clip={{_base_.clip}},
    class_names={{_base_.model.class_names}}, data_preprocessor={{_base_.clip_preprocessor}})
train_dataloader = dict(dataset=dict(pipeline={{_base_.test_pipeline_flip}}),
                        collate_fn=dict(type='pseudo_collate'))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader
custom_hooks = []
