"""mmext: OpenMMLab extension suite for ten 2023 vision papers.

Importing ``mmext`` makes its registries known to mmengine (configs name components as
``type='mmext.Name'``) and adds to torch's process-wide ``weights_only`` safe-globals list the
objects an mmengine runner checkpoint holds, so that torch's default loading reads them:
mmengine's ``HistoryBuffer`` (and, under the name ``builtins.getattr``, a getattr limited to its
statistics methods, which its pickles use), ``numpy.ndarray``,
``numpy.dtype`` and its ``numpy.dtypes.*DType`` classes, and numpy's ``_reconstruct`` and
``scalar`` (see :func:`mmext.utils.register_checkpoint_safe_globals`). Nothing else
process-wide is changed on import.
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
    import mmext.diffusion  # noqa: F401
    import mmext.engine  # noqa: F401
    import mmext.models  # noqa: F401
    import mmext.nas  # noqa: F401
    import mmext.quant  # noqa: F401


__all__ = ['SCOPE', '__version__', 'register_all_modules']
