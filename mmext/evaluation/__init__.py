"""Metrics shared by the methods ."""
from .open_vocab_iou import OpenVocabIoUMetric, class_indices, harmonic_iou, split_classes
from .retrieval import TextImageRecall, ranking_to_scores

__all__ = ['OpenVocabIoUMetric', 'TextImageRecall', 'class_indices', 'harmonic_iou',
           'ranking_to_scores', 'split_classes']
