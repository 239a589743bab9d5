# Zero-shot CLIP on the few-shot demo's test canvases ("a photo of a {}."; nothing trains):
#   python tools/test.py configs/sada/zero-shot_demo-clip_fashion-scene-items.py none
_base_ = ['./_base_/fewshot_demo-clip_fashion-scene-items.py']

model = dict(type='mmext.ZeroShotCLIPClassifier', clip={{_base_.clip}},
             class_names={{_base_.class_names}}, templates=['a photo of a {}.'],
             data_preprocessor={{_base_.data_preprocessor}})
