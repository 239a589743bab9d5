"""Metrics shared by the methods ."""
from .continual import ContinualAccuracy, continual_summary
from .open_vocab_iou import OpenVocabIoUMetric, class_indices, harmonic_iou, split_classes

__all__ = ['ContinualAccuracy', 'continual_summary', 'OpenVocabIoUMetric', 'class_indices', 'harmonic_iou', 'split_classes']
