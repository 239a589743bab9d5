"""Teacher-student plumbing shared by the distillers."""
from .classifier import DistilledClassifier
from .losses import LogitDistillationLoss
from .teacher import (
    TeacherStudentModel,
    build_frozen_teacher,
    check_teacher_cfg,
    load_config,
)

__all__ = ['DistilledClassifier', 'LogitDistillationLoss', 'TeacherStudentModel',
           'build_frozen_teacher', 'check_teacher_cfg', 'load_config']
