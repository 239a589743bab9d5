# A linear probe on the frozen demo CLIP's image features, trained task after task (logits over
# the classes seen so far); same data, schedule and evaluation as AttriCLIP's demo config.
#   python tools/train.py configs/attriclip/linear-probe_demo-clip_5x2-5e_fashion-scene-items.py
_base_ = ['./_base_/continual_demo-clip_5x2_fashion-scene-items.py']

model = dict(
    type='mmext.LinearProbeClassifier',
    clip={{_base_.clip}},
    class_names={{_base_.class_names}},
    data_preprocessor={{_base_.data_preprocessor}})
