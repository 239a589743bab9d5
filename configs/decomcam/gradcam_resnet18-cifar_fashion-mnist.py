# The protocol of decomcam_resnet18-cifar_fashion-mnist.py with Grad-CAM instead of Decom-CAM:
# the same classifier, images and subsets. Other baselines: the same with another type
# (GradCAMPlusPlus, XGradCAM, ScoreCAM, LayerCAM, EigenCAM, HiResCAM).
_base_ = ['./decomcam_resnet18-cifar_fashion-mnist.py']

model = dict(cam=dict(_delete_=True, type='GradCAM', target_layers=['backbone.layer4']))
