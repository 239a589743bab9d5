# ProDA (32 prompts of 16 tokens, 4 per step, diagonal-covariance logits) on the few-shot demo,
# SADA's data and schedule:
#   python tools/train.py configs/sada/proda_demo-clip_16shot-20e_fashion-scene-items.py
_base_ = ['./_base_/fewshot_demo-clip_fashion-scene-items.py']

model = dict(type='mmext.ProDAClassifier', clip={{_base_.clip}},
             class_names={{_base_.class_names}}, num_prompts=32, num_context=16,
             prompts_per_step=4, data_preprocessor={{_base_.data_preprocessor}})
