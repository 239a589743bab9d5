# CoOp trained task after task, the forgetting baseline of AttriCLIP: one context of 16
# tokens shared by all classes, on the frozen CLIP; data, schedule and evaluation of
# attriclip_vit-l-14_10x10-10e_imagenet100.py.
#   python tools/train.py configs/attriclip/coop_vit-l-14_10x10-10e_imagenet100.py
_base_ = ['./_base_/continual_vit-l-14_10x10_imagenet100.py']

model = dict(
    type='mmext.CoOpClassifier',
    clip={{_base_.clip}},
    num_context=16,
    data_preprocessor={{_base_.data_preprocessor}})
