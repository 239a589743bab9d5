# The protocol of decomcam_resnet18-w32_fashion-scene-items.py with Grad-CAM: the same
# classifier, canvases and subsets. Other baselines: --cfg-options model.cam.type=<name>
# (GradCAMPlusPlus, XGradCAM, ScoreCAM, LayerCAM, EigenCAM, HiResCAM, AblationCAM).
_base_ = ['./decomcam_resnet18-w32_fashion-scene-items.py']

model = dict(cam=dict(_delete_=True, type='GradCAM', target_layers=['backbone.layer4']))
