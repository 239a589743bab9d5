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


def relative_paths(value, root: Path):
    """``value`` (nested dicts, lists, strings) with every path under ``root`` made relative to
    it, so that a results file reads the same on every machine."""
    if isinstance(value, dict):
        return {k: relative_paths(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(f'{Path(root).resolve()}/', '')
    return value
