# Zero-shot CLIP along the same class-incremental sequence: nothing trains, so one evaluation
# of the 500 test canvases gives every row of the accuracy matrix (candidates: the classes seen
# by task t), from the template "a photo of a {}.":
#   python tools/test.py configs/attriclip/zero-shot_demo-clip_5x2_fashion-scene-items.py none
_base_ = ['./_base_/continual_demo-clip_5x2_fashion-scene-items.py']

model = dict(
    type='mmext.ZeroShotCLIPClassifier',
    clip={{_base_.clip}},
    class_names={{_base_.class_names}},
    templates=['a photo of a {}.'],
    data_preprocessor={{_base_.data_preprocessor}})
test_evaluator = dict(type='mmext.ContinualAccuracy', all_prefixes=True)
