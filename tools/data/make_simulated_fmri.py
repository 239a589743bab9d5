"""Simulate fMRI responses to Fashion-MNIST stimuli for the CMVDM demo (a simulator, not a
brain model; see mmext/datasets/simulated_fmri.py for the encoding model)::

    python tools/data/make_simulated_fmri.py          # data/simulated_fmri, the demo's settings

Writes ``simulated_fmri.npz`` and ``simulator.json``; the same seed and settings give the same
arrays. An existing folder is kept unless ``--force``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmext.datasets.simulated_fmri import SimulatorConfig, make_simulated_fmri  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=Path('data/simulated_fmri'))
    parser.add_argument('--fashion-root', default=None, help='Fashion-MNIST IDX folder')
    parser.add_argument('--force', action='store_true', help='replace an existing data set')
    defaults = SimulatorConfig()
    for f in fields(SimulatorConfig):
        if f.name != 'rf_sigma':
            parser.add_argument('--' + f.name.replace('_', '-'), type=type(getattr(defaults, f.name)),
                                default=getattr(defaults, f.name))
    parser.add_argument('--rf-sigma', type=float, nargs=2, default=list(defaults.rf_sigma))
    args = parser.parse_args(argv)
    if (args.out / 'simulated_fmri.npz').exists() and not args.force:
        print(f'{args.out / "simulated_fmri.npz"} exists: kept (--force to rebuild)')
        return
    cfg = SimulatorConfig(**{f.name: tuple(getattr(args, f.name)) if f.name == 'rf_sigma'
                             else getattr(args, f.name) for f in fields(SimulatorConfig)})
    path = make_simulated_fmri(args.out, cfg, args.fashion_root)
    print(f'wrote {path}: {cfg}')


if __name__ == '__main__':
    main()
