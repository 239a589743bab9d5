"""Utilities shared by the tools and the library."""
from .setup_env import (
                        dump_predictions,
                        finish_distributed,
                        load_tool_config,
                        prepare_distributed,
                        register_checkpoint_safe_globals,
)

__all__ = ['dump_predictions', 'finish_distributed', 'load_tool_config', 'prepare_distributed',
           'register_checkpoint_safe_globals']
