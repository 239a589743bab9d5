"""AttriCLIP: class-incremental learning on a frozen CLIP with an attribute word bank
(projects/attriclip/README.md)."""
from .bank import AttributeWordBank, KeyMatchingLoss, PromptOrthogonalityLoss
from .classifier import AttriCLIPClassifier

__all__ = ['AttriCLIPClassifier', 'AttributeWordBank', 'KeyMatchingLoss',
           'PromptOrthogonalityLoss']
