# The Decom-CAM protocol on ImageNet-1k val for users who have it (mmpretrain's layout under
# data/imagenet: val/ images and meta/val.txt), with mmpretrain's ResNet-50:
#   python tools/test.py configs/decomcam/decomcam_resnet50_in1k.py \
#       https://download.openmmlab.com/mmclassification/v0/resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth
# (or a downloaded copy of that checkpoint; its backbone.* / head.* keys load into the wrapper).
# The paper's setting: target layer layer4, p = 500 channels, n = 10 sub-maps, blur sigma 10 px
# at 224 px. mmpretrain's ImageNet dataset carries no boxes, so the energy pointing game is not
# reported here (the Fashion Scenes protocol has it). Baselines: gradcam_resnet50_in1k.py and
# --cfg-options model.cam.type=<name>.
_base_ = ['mmpretrain::resnet/resnet50_8xb32_in1k.py']
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmext.CAMEvalModel',
    classifier={{_base_.model}},
    cam=dict(type='DecomCAM', target_layers=['backbone.layer4'], num_channels=500,
             num_components=10, blur_sigma=10.0),
    steps=20,
    blur_sigma=10.0)

test_dataloader = dict(batch_size=8)
test_evaluator = dict(_delete_=True, type='mmext.StratifiedCAMMetric', num_bins=5)
