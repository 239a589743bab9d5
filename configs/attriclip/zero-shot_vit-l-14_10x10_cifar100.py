# Zero-shot CLIP along the CIFAR-100 10 x 10 sequence (nothing trains: one evaluation of the
# test set gives every row of the accuracy matrix), template "a photo of a {}.":
#   python tools/test.py configs/attriclip/zero-shot_vit-l-14_10x10_cifar100.py none
_base_ = ['./_base_/continual_vit-l-14_10x10_cifar100.py']

model = dict(
    type='mmext.ZeroShotCLIPClassifier',
    clip={{_base_.clip}},
    class_names={{_base_.cifar100_classes}},  # 'aquarium_fish' reads 'aquarium fish'
    templates=['a photo of a {}.'],
    data_preprocessor={{_base_.data_preprocessor}})
test_evaluator = dict(type='mmext.ContinualAccuracy', all_prefixes=True)
