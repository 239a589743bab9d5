"""Shared pieces of the miniature-reproduction benchmarks: train one row of an ablation with
``tools/train.py``, read its final validation metrics, and keep every run in a results file
that accumulates over invocations (mean and spread over seeds)."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # mmext and projects/ from a plain clone, as tools/ do

from mmext.utils.atomic import atomic_write  # noqa: E402
from mmext.utils.run_logs import read_scalars, relative_paths  # noqa: E402


def final_metrics(work_dir: Path, keys: dict[str, str]) -> dict:
    """``{name: value}`` of the last validation in the run's scalars.json, for
    ``keys = {name: scalar key}`` (e.g. ``{'mAP': 'coco/bbox_mAP'}``)."""
    first = next(iter(keys.values()))
    val = [e for e in read_scalars(work_dir) if first in e]
    if not val:
        raise ValueError(f'the latest run under {work_dir} logged no {first}: it did not '
                         'validate')
    return {name: val[-1][key] for name, key in keys.items()}


def learning_curve(work_dir: Path, key: str = 'coco/bbox_mAP') -> list[float]:
    """``key`` at every validation of the run's scalars.json, in order."""
    return [e[key] for e in read_scalars(work_dir) if key in e]


def train(config: str, work_dir: Path, options: list[str], label: str) -> float:
    """Run ``tools/train.py config --work-dir work_dir --cfg-options options`` from the repo
    root; return its wall time in minutes; raise with the output's tail if it fails."""
    start = time.time()
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir)] + (
        ['--cfg-options', *options] if options else [])
    print(f'[{label}] ' + ' '.join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f'{label} failed:\n{done.stdout[-3000:]}')
    return round((time.time() - start) / 60, 1)


def mean_spread(values: list[float]) -> tuple[float, float]:
    """Mean and half the range."""
    return statistics.mean(values), (max(values) - min(values)) / 2


class ResultsFile:
    """``{'runs': {row: {seed: run}}, 'summary': ..., 'superseded': [...], ...}`` in a JSON
    file, with a markdown table written beside it after every run."""

    def __init__(self, path: Path, table: Path):
        self.path, self.table = path, table
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def runs(self, row: str) -> dict:
        return self.data.setdefault('runs', {}).setdefault(row, {})

    def has(self, row: str, seed: int) -> bool:
        return str(seed) in self.data.get('runs', {}).get(row, {})

    def record(self, row: str, seed: int, run: dict,
               summarize: Callable[[ResultsFile], str]) -> None:
        """Keep ``run``, then save the file and the table ``summarize(self)`` returns."""
        self.runs(row)[str(seed)] = run
        self.save(summarize(self))

    def save(self, table: str) -> None:
        """Write the file (paths inside the clone relative to it) and the table."""
        self.data = relative_paths(self.data, REPO)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.data, indent=2) + '\n')
        atomic_write(self.table, table + '\n')
        print(table, flush=True)

    def superseded_lines(self, metrics: tuple[str, ...]) -> list[str]:
        superseded = self.data.get('superseded', [])
        if not superseded:
            return []
        lines = ['', 'Superseded runs (kept for the record; the config has changed since):', '']
        return lines + [f"- {r['row']} seed {r['seed']}: " + ', '.join(
            f'{m} {r[m]:.3f}' for m in metrics) + f". {r['note']}" for r in superseded]


def seeds_parser(description: str, default_seeds=(0, 1)):
    """The command line shared by the chained-stage benchmarks: ``--seeds`` and ``--quick``."""
    import argparse
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--seeds', nargs='+', type=int, default=list(default_seeds))
    parser.add_argument('--quick', action='store_true',
                        help='a few iterations of every stage, results not kept')
    return parser
