"""Q-DETR: quantized DETR (and SMCA-DETR, its second detector) with distribution alignment and distribution
rectification distillation. Configs import it with
``custom_imports=dict(imports=['mmext', 'projects.qdetr'])``."""
from .distribution_alignment import (
    QueryDistributionAlignment,
    add_distribution_alignment,
    query_head_dim,
)
from .qdetr import QDETR, normalised_gt_boxes, record_coattended_features
from .query_matching import DRDLoss, ForegroundQueryMatcher
from .smca_detr import SMCADETR
from .visualization import TeacherStudentVisualizationHook

__all__ = [
    'QueryDistributionAlignment', 'add_distribution_alignment', 'query_head_dim', 'QDETR',
    'normalised_gt_boxes', 'record_coattended_features', 'DRDLoss',
    'ForegroundQueryMatcher', 'SMCADETR', 'TeacherStudentVisualizationHook'
]
