"""MVP-SEG: multi-view prompt learning for open-vocabulary segmentation (projects/mvpseg/README.md)."""
from .head import MVPSegHead
from .losses import GlobalPromptLoss, OrthogonalConstraintLoss
from .segmentor import CLIPDenseEncoder, MVPSegmentor

__all__ = ['CLIPDenseEncoder', 'GlobalPromptLoss', 'MVPSegHead', 'MVPSegmentor',
           'OrthogonalConstraintLoss']
