"""SADA: selective attack and distribution alignment for few-shot CLIP
(projects/sada/README.md)."""
from .alignment import GaussianEMDLoss, PrototypeBank, calibrate
from .attack import (
                     AreaPriorLoss,
                     SelectiveAttackAdapter,
                     apply_perturbation,
                     selective_perturbation,
)
from .classifier import SADAClassifier

__all__ = ['AreaPriorLoss', 'GaussianEMDLoss', 'PrototypeBank', 'SADAClassifier',
           'SelectiveAttackAdapter', 'apply_perturbation', 'calibrate', 'selective_perturbation']
