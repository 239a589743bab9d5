"""open_clip models as mmengine modules, prompt learners, dense features and classifiers."""
from .classifiers import (
                          CLIPClassifier,
                          CoOpClassifier,
                          LinearProbeClassifier,
                          ZeroShotCLIPClassifier,
)
from .dense import dense_image_features
from .losses import PromptOrthogonalityLoss
from .model import OpenCLIPModel, register_model_config
from .prompt import PromptLearner
from .text import TextTower, build_prompt_sequences, encode_contexts_alone

__all__ = ['CLIPClassifier', 'CoOpClassifier', 'LinearProbeClassifier', 'OpenCLIPModel',
           'PromptLearner', 'PromptOrthogonalityLoss', 'TextTower', 'ZeroShotCLIPClassifier',
           'build_prompt_sequences', 'dense_image_features', 'encode_contexts_alone',
           'register_model_config']
