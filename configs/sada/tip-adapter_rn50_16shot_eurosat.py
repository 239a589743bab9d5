# Tip-Adapter, training-free (alpha 1, beta 5.5; no search on val), a cache of 16 shots
# x 10 augmented passes (other counts: --cfg-options train_dataloader.dataset.num_shots=K), on eurosat: SADA's baseline on the same split and
# test images (_base_/datasets/eurosat.py), single-view training, the CLIP's own normalisation.
#   python tools/test.py configs/sada/tip-adapter_rn50_16shot_eurosat.py none
_base_ = ['./_base_/datasets/eurosat.py']

model = dict(
    _delete_=True, type='mmext.TipAdapterClassifier', templates=['a photo of a {}.'], alpha=1.0,
    beta=5.5, clip={{_base_.clip}},
    class_names={{_base_.model.class_names}}, data_preprocessor={{_base_.clip_preprocessor}})
train_dataloader = dict(dataset=dict(pipeline={{_base_.test_pipeline_flip}}),
                        collate_fn=dict(type='pseudo_collate'))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader
custom_hooks = [dict(type='mmext.InitFromTrainFeaturesHook', rounds=10)]
