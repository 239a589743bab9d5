"""mmext: OpenMMLab extension suite for ten 2023 vision papers.

Importing ``mmext`` makes its registries known to mmengine (configs name components as
``type='mmext.Name'``) and lets torch's default ``weights_only`` loading read mmengine
checkpoints (see :func:`mmext.utils.register_checkpoint_safe_globals`).
"""
from .registry import SCOPE
from .utils import register_checkpoint_safe_globals

__version__ = '0.1.0'

register_checkpoint_safe_globals()


def register_all_modules() -> None:
    """Import every mmext module that registers components, as mmdet's function of that name.

    Lookups import them lazily anyway (each registry has ``locations``); call this to list
    or inspect the registries up front.
    """
    import mmext.datasets  # noqa: F401
    import mmext.engine  # noqa: F401
    import mmext.models  # noqa: F401
    import mmext.nas  # noqa: F401
    import mmext.quant  # noqa: F401


__all__ = ['SCOPE', '__version__', 'register_all_modules']
