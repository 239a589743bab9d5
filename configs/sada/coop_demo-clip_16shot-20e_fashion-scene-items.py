# CoOp (one shared context of 16 tokens) on the few-shot demo, SADA's data and schedule:
#   python tools/train.py configs/sada/coop_demo-clip_16shot-20e_fashion-scene-items.py
_base_ = ['./_base_/fewshot_demo-clip_fashion-scene-items.py']

model = dict(type='mmext.CoOpClassifier', clip={{_base_.clip}},
             class_names={{_base_.class_names}}, num_context=16,
             data_preprocessor={{_base_.data_preprocessor}})
