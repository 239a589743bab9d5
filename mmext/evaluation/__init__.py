"""Metrics shared by the methods ."""
from .open_vocab_iou import OpenVocabIoUMetric, class_indices, harmonic_iou, split_classes

__all__ = ['OpenVocabIoUMetric', 'class_indices', 'harmonic_iou', 'split_classes']
