"""Engine parts shared by several methods (optimizer wrapper constructors, the class-incremental loop)."""
from .continual_loop import ClassIncrementalLoop
from .optim import MultiOptimWrapperConstructor

__all__ = ['ClassIncrementalLoop', 'MultiOptimWrapperConstructor']
