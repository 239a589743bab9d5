# Tip-Adapter, training-free: zero-shot logits + a cache of the 16-shot training features
# (each averaged over 10 augmented passes), alpha 1, beta 5.5 (no search on val):
#   python tools/test.py configs/sada/tip-adapter_demo-clip_16shot_fashion-scene-items.py none
_base_ = ['./_base_/fewshot_demo-clip_fashion-scene-items.py']

model = dict(type='mmext.TipAdapterClassifier', clip={{_base_.clip}},
             class_names={{_base_.class_names}}, templates=['a photo of a {}.'], alpha=1.0,
             beta=5.5, data_preprocessor={{_base_.data_preprocessor}})
custom_hooks = [dict(type='mmext.InitFromTrainFeaturesHook', rounds=10)]
