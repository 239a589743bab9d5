"""MVP-SEG: multi-view prompt learning for open-vocabulary segmentation (projects/mvpseg/README.md)."""
from .head import MVPSegHead
from .losses import GlobalPromptLoss, OrthogonalConstraintLoss
from .pseudo_labels import PseudoLabeler, annotation_lut, select_pseudo_labels, unseen_pixel_mask
from .segmentor import CLIPDenseEncoder, MVPSegmentor

__all__ = ['CLIPDenseEncoder', 'GlobalPromptLoss', 'MVPSegHead', 'MVPSegmentor',
           'OrthogonalConstraintLoss', 'PseudoLabeler', 'annotation_lut', 'select_pseudo_labels',
           'unseen_pixel_mask']
