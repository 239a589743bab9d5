# ProDA (32 prompts of 16 tokens, 4 per step), 16 shots (other counts: --cfg-options
# train_dataloader.dataset.num_shots=K), on imagenet: SADA's baseline on the same split and
# test images (_base_/datasets/imagenet.py), single-view training, the CLIP's own normalisation.
#   python tools/train.py configs/sada/proda_rn50_16shot-50e_imagenet.py
_base_ = ['./_base_/datasets/imagenet.py']

model = dict(
    _delete_=True, type='mmext.ProDAClassifier', num_prompts=32, num_context=16, prompts_per_step=4, clip={{_base_.clip}},
    class_names={{_base_.model.class_names}}, data_preprocessor={{_base_.clip_preprocessor}})
train_dataloader = dict(dataset=dict(pipeline={{_base_.test_pipeline_flip}}),
                        collate_fn=dict(type='pseudo_collate'))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader
custom_hooks = []
