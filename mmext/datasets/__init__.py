"""Embedded data: Fashion-MNIST and the Fashion Scenes sets generated from it; class-incremental
task sequences over any classification dataset; few-shot splits (CoOp's files)."""
from .class_incremental import (
                                ClassIncrementalDataset,
                                MergedClassDataset,
                                TaskView,
                                normalise_class_name,
)
from .fashion_mnist import (
                                FASHION_MNIST_CLASSES,
                                CorruptDataError,
                                DataNotFoundError,
                                FashionMNIST,
                                load_fashion_mnist,
                                read_idx,
)
from .fashion_scenes import SEG_CLASSES, SEG_PALETTE, SceneConfig, make_fashion_scenes
from .few_shot import FewShotDataset, read_split_file, sample_few_shot, split_class_names
from .fmri import BOLD5000Dataset, FMRIDataset, GODDataset, SimulatedFMRIDataset
from .moving_fashion import MovingFashionDataset, random_attributes, render, warp_grid
from .scene_datasets import FashionScenesDataset, FashionScenesSegDataset
from .scene_items import FashionSceneItems
from .simulated_fmri import SimulatorConfig, make_simulated_fmri
from .transforms import PackFMRIInputs, ReverseChannels, VoxelDropout, VoxelPad
from .voxceleb import VoxCelebPairDataset

__all__ = [
    'FewShotDataset', 'read_split_file', 'sample_few_shot', 'split_class_names',
    'ClassIncrementalDataset', 'MergedClassDataset', 'TaskView', 'normalise_class_name',
    'FASHION_MNIST_CLASSES', 'CorruptDataError', 'DataNotFoundError', 'FashionMNIST',
    'load_fashion_mnist', 'read_idx', 'SEG_CLASSES', 'SEG_PALETTE', 'FashionScenesDataset',
    'FashionScenesSegDataset', 'FashionSceneItems', 'ReverseChannels', 'SceneConfig',
    'make_fashion_scenes', 'BOLD5000Dataset', 'FMRIDataset', 'GODDataset',
    'SimulatedFMRIDataset', 'SimulatorConfig', 'make_simulated_fmri', 'PackFMRIInputs',
    'VoxelDropout', 'VoxelPad', 'MovingFashionDataset', 'random_attributes', 'render', 'warp_grid',
    'VoxCelebPairDataset'
]
