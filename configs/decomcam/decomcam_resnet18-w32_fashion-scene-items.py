# The Decom-CAM protocol on single-item Fashion Scenes canvases, where each item's mask is exact:
#   python tools/test.py configs/decomcam/decomcam_resnet18-w32_fashion-scene-items.py \
#       work_dirs/resnet18-w32_1xb64-20e_fashion-scene-items/epoch_20.pth
# (the classifier of configs/demo/resnet18-w32_1xb64-20e_fashion-scene-items.py, its own
# checkpoint). Saliency of the ground-truth class for the 500 validation canvases; Average Drop,
# Increase in Confidence, deletion / insertion AUC and the energy pointing game on the item mask,
# per subset (correct / wrong, quintiles of the ground-truth probability) and macro-averaged.
# Baselines: gradcam_resnet18-w32_fashion-scene-items.py (--cfg-options model.cam.type=ScoreCAM
# and so on); benchmarks/decomcam.py runs them all.
_base_ = ['../demo/resnet18-w32_1xb64-20e_fashion-scene-items.py']

model = dict(
    _delete_=True,
    type='mmext.CAMEvalModel',
    classifier={{_base_.model}},
    cam=dict(type='DecomCAM', target_layers=['backbone.layer4'], num_components=10,
             blur_sigma=6.0),
    steps=16,
    blur_sigma=6.0)  # 128-px canvases: the paper's 10 px at 224, scaled

test_dataloader = dict(batch_size=25)
test_evaluator = dict(_delete_=True, type='mmext.StratifiedCAMMetric', num_bins=5)
