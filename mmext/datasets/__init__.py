"""Embedded data: Fashion-MNIST and the Fashion Scenes sets generated from it."""
from .fashion_mnist import (
                            FASHION_MNIST_CLASSES,
                            CorruptDataError,
                            DataNotFoundError,
                            FashionMNIST,
                            load_fashion_mnist,
                            read_idx,
)
from .fashion_scenes import SEG_CLASSES, SEG_PALETTE, SceneConfig, make_fashion_scenes
from .scene_datasets import FashionScenesDataset, FashionScenesSegDataset
from .scene_items import FashionSceneItems

__all__ = [
    'FASHION_MNIST_CLASSES', 'CorruptDataError', 'DataNotFoundError', 'FashionMNIST',
    'load_fashion_mnist', 'read_idx', 'SEG_CLASSES', 'SEG_PALETTE', 'FashionScenesDataset',
    'FashionScenesSegDataset', 'FashionSceneItems', 'SceneConfig',
    'make_fashion_scenes'
]
