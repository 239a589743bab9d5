# A linear probe (100 outputs) on the frozen CLIP's normalised image features, trained task
# after task with logits over the classes seen so far; data, schedule and evaluation of
# attriclip_vit-l-14_10x10-10e_cifar100.py.
#   python tools/train.py configs/attriclip/linear-probe_vit-l-14_10x10-10e_cifar100.py
_base_ = ['./_base_/continual_vit-l-14_10x10_cifar100.py']

model = dict(
    type='mmext.LinearProbeClassifier',
    clip={{_base_.clip}},
    num_classes=100,
    data_preprocessor={{_base_.data_preprocessor}})
