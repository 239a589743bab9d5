"""AttriCLIP: class-incremental learning on a frozen CLIP with an attribute word bank
(projects/attriclip/README.md)."""
from mmext.clip import PromptOrthogonalityLoss

from .bank import AttributeWordBank, KeyMatchingLoss
from .classifier import AttriCLIPClassifier

__all__ = ['AttriCLIPClassifier', 'AttributeWordBank', 'KeyMatchingLoss',
           'PromptOrthogonalityLoss']
