"""Metrics shared by the methods (methods.md 1.7)."""
from .open_vocab_iou import OpenVocabIoUMetric, class_indices, harmonic_iou, split_classes

__all__ = ['OpenVocabIoUMetric', 'class_indices', 'harmonic_iou', 'split_classes']
