"""Metrics shared by the methods ."""
from .animation import AnimationMetric, psnr, temporal_error
from .continual import ContinualAccuracy, continual_summary
from .frechet import CleanFIDInception, FrechetDistanceMetric, frechet_distance
from .image_quality import (
                            Judge,
                            ReconstructionMetric,
                            gaussian_ssim,
                            n_way_identification,
                            pixel_pcc,
)
from .open_vocab_iou import OpenVocabIoUMetric, class_indices, harmonic_iou, split_classes

__all__ = ['AnimationMetric', 'psnr', 'temporal_error', 'CleanFIDInception', 'FrechetDistanceMetric', 'frechet_distance', 'Judge', 'ReconstructionMetric', 'gaussian_ssim', 'n_way_identification', 'pixel_pcc',
           'ContinualAccuracy', 'continual_summary', 'OpenVocabIoUMetric', 'class_indices', 'harmonic_iou', 'split_classes']
