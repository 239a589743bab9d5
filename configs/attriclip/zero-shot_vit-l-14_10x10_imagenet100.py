# Zero-shot CLIP along the ImageNet-100 10 x 10 sequence (one evaluation gives every row),
# class names from data/imagenet100/meta/classes.txt, template "a photo of a {}.":
#   python tools/test.py configs/attriclip/zero-shot_vit-l-14_10x10_imagenet100.py none
_base_ = ['./_base_/continual_vit-l-14_10x10_imagenet100.py']

model = dict(
    type='mmext.ZeroShotCLIPClassifier',
    clip={{_base_.clip}},
    class_names={{_base_.classes_file}},
    templates=['a photo of a {}.'],
    data_preprocessor={{_base_.data_preprocessor}})
test_evaluator = dict(type='mmext.ContinualAccuracy', all_prefixes=True)
