"""open_clip models as mmengine modules, prompt learners and dense features."""
from .dense import dense_image_features
from .model import OpenCLIPModel, register_model_config
from .prompt import PromptLearner
from .text import TextTower, build_prompt_sequences

__all__ = ['OpenCLIPModel', 'PromptLearner', 'TextTower', 'build_prompt_sequences',
           'dense_image_features', 'register_model_config']
