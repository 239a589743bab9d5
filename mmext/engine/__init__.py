"""Engine parts shared by several methods (optimizer wrapper constructors)."""
from .optim import MultiOptimWrapperConstructor

__all__ = ['MultiOptimWrapperConstructor']
