"""Engine parts shared by several methods: optimizer wrapper constructors, the class-incremental
loop, initialisation from features of the training images, numerical guards."""
from .checkpoint_fit import CheckpointFitHook
from .continual_loop import ClassIncrementalLoop
from .feature_init import InitFromTrainFeaturesHook
from .numerical_guard import NumericalGuardHook
from .optim import MergedGroupsOptimWrapperConstructor, MultiOptimWrapperConstructor
from .rng_state import RNGStateHook

__all__ = ['CheckpointFitHook', 'ClassIncrementalLoop', 'InitFromTrainFeaturesHook',
           'MergedGroupsOptimWrapperConstructor', 'MultiOptimWrapperConstructor',
           'NumericalGuardHook', 'RNGStateHook']
