"""Saliency maps: Decom-CAM on pytorch-grad-cam's API, its baselines by name, CAM targets."""
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)

from mmext.registry import CAM_METHODS

from .decom_cam import DecomCAM, Decomposition, decompose_activations, gaussian_blur, minmax
from .evaluation import CAMEvalModel, StratifiedCAMMetric
from .layers import resolve_target_layers, token_reshape_transform
from .targets import ClassLogitTarget, ClassProbabilityTarget, CLIPImageModel, CLIPTextTarget

GRAD_CAM_BASELINES = {cls.__name__: cls for cls in (
    GradCAM, GradCAMPlusPlus, XGradCAM, ScoreCAM, LayerCAM, EigenCAM, AblationCAM, HiResCAM)}
for _name, _cls in GRAD_CAM_BASELINES.items():
    if _name not in CAM_METHODS.module_dict:
        CAM_METHODS.register_module(name=_name, module=_cls)

__all__ = ['CAM_METHODS', 'CAMEvalModel', 'StratifiedCAMMetric', 'CLIPImageModel', 'CLIPTextTarget', 'ClassLogitTarget',
           'ClassProbabilityTarget', 'DecomCAM', 'Decomposition', 'GRAD_CAM_BASELINES',
           'decompose_activations', 'gaussian_blur', 'minmax', 'resolve_target_layers',
           'token_reshape_transform']
