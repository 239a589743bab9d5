"""Reading what a run of the stock tools logged."""
from __future__ import annotations

import json
from pathlib import Path


def read_scalars(run_dir: Path) -> list[dict]:
    """The entries of mmengine's LocalVisBackend log (``<timestamp>/vis_data/scalars.json``) of
    the latest run under ``run_dir``."""
    files = sorted(Path(run_dir).glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json under {run_dir}: the run did not '
                                'log (or did not start)')
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
