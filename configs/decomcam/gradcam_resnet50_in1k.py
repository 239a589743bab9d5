# decomcam_resnet50_in1k.py with Grad-CAM: the same classifier, images and subsets.
_base_ = ['./decomcam_resnet50_in1k.py']

model = dict(cam=dict(_delete_=True, type='GradCAM', target_layers=['backbone.layer4']))
