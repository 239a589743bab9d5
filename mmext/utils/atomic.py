"""Write result files so that a kill never leaves half of one."""
from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``: an
    interrupted write leaves the old file or the new one, never a mix."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(text)
    os.replace(tmp, path)
