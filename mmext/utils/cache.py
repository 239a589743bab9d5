"""The mmext cache folder, outside the clone (the one ``tools/install.sh`` uses)."""
import os
from pathlib import Path


def cache_root() -> Path:
    """``$MMEXT_CACHE``, else ``$XDG_CACHE_HOME/mmext``, else ``~/.cache/mmext``."""
    default = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'mmext'
    return Path(os.environ.get('MMEXT_CACHE', default))
