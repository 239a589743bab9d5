# CoOp trained task after task (the forgetting baseline of AttriCLIP): one context of 16
# tokens shared by all classes, on the frozen demo CLIP, same data, schedule and evaluation as
# attriclip_demo-clip_5x2-5e_fashion-scene-items.py.
#   python tools/train.py configs/attriclip/coop_demo-clip_5x2-5e_fashion-scene-items.py
_base_ = ['./_base_/continual_demo-clip_5x2_fashion-scene-items.py']

model = dict(
    type='mmext.CoOpClassifier',
    clip={{_base_.clip}},
    class_names={{_base_.class_names}},
    num_context=16,
    data_preprocessor={{_base_.data_preprocessor}})
