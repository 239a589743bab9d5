# The Decom-CAM evaluation protocol on the Fashion-MNIST demo classifier, through tools/test.py:
#   python tools/test.py configs/decomcam/decomcam_resnet18-cifar_fashion-mnist.py \
#       work_dirs/resnet18-cifar_1xb128-5e_fashion-mnist/epoch_5.pth
# (the classifier of configs/demo/resnet18-cifar_1xb128-5e_fashion-mnist.py, its own checkpoint).
# Saliency of the ground-truth class for the first 500 test images; Average Drop, Increase in
# Confidence, deletion / insertion AUC per subset (correct / wrong, quintiles of the
# ground-truth probability) and macro-averaged. Another method: --cfg-options
# model.cam.type=GradCAM (the same subsets, since the classifier is the same).
_base_ = ['../demo/resnet18-cifar_1xb128-5e_fashion-mnist.py']

model = dict(
    _delete_=True,
    type='mmext.CAMEvalModel',
    classifier={{_base_.model}},
    cam=dict(type='DecomCAM', target_layers=['backbone.layer4'], num_components=10,
             blur_sigma=3.0),
    steps=20,
    blur_sigma=3.0)  # 32-px images: the paper's 10 px would blur them to a flat colour

test_dataloader = dict(batch_size=16, dataset=dict(indices=500))
test_evaluator = dict(_delete_=True, type='mmext.StratifiedCAMMetric', num_bins=5)
