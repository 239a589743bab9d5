"""Models and model parts shared by several methods."""
from .weight_init import TorchvisionPretrainedInit, map_state_dict_by_order

__all__ = ['TorchvisionPretrainedInit', 'map_state_dict_by_order']
