# The Decom-CAM protocol on ImageNet-1k val with mmpretrain's DeiT-S (data/imagenet as for
# decomcam_resnet50_in1k.py):
#   python tools/test.py configs/decomcam/decomcam_deit-small_in1k.py \
#       https://download.openmmlab.com/mmclassification/v0/deit/deit-small_pt-4xb256_in1k_20220218-9425b9bb.pth
# Target: the input norm of the last encoder layer (after it only the class token reaches the
# head, so the patch tokens of the last layer's output get no gradient); its 1 + 14 x 14 tokens
# become a 384 x 14 x 14 map (num_prefix_tokens=1: the class token is dropped). A distilled DeiT
# has 2 prefix tokens.
_base_ = ['mmpretrain::deit/deit-small_4xb256_in1k.py']
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmext.CAMEvalModel',
    classifier={{_base_.model}},
    cam=dict(type='DecomCAM', target_layers=['backbone.layers.11.ln1'], num_prefix_tokens=1,
             num_channels=384, num_components=10, blur_sigma=10.0),
    steps=20,
    blur_sigma=10.0)

test_dataloader = dict(batch_size=8)
test_evaluator = dict(_delete_=True, type='mmext.StratifiedCAMMetric', num_bins=5)
