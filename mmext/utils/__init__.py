"""Utilities shared by the tools and the library."""
from .setup_env import prepare_distributed, register_checkpoint_safe_globals

__all__ = ['prepare_distributed', 'register_checkpoint_safe_globals']
