"""Engine parts shared by several methods: optimizer wrapper constructors, the class-incremental
loop, initialisation from features of the training images."""
from .continual_loop import ClassIncrementalLoop
from .feature_init import InitFromTrainFeaturesHook
from .optim import MultiOptimWrapperConstructor

__all__ = ['ClassIncrementalLoop', 'InitFromTrainFeaturesHook', 'MultiOptimWrapperConstructor']
