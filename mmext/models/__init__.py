"""Models and model parts shared by several methods."""
from .perceptual import VGGPerceptualLoss
from .weight_init import TorchvisionPretrainedInit, map_state_dict_by_order

__all__ = ['VGGPerceptualLoss', 'TorchvisionPretrainedInit', 'map_state_dict_by_order']
