"""Released animator checkpoints into mmext's animator modules: FOMM's ``vox-cpk.pth.tar``
(``kp_detector`` and ``generator`` state dicts) into :class:`FOMMAnimator`."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FOMM_PARTS = ('kp_detector', 'generator')


def fomm_to_mmext(checkpoint: dict, model: nn.Module) -> dict:
    """FOMM's checkpoint dict -> a state dict of ``model`` (a :class:`FOMMAnimator`).

    ``module.`` prefixes (a DataParallel save) are dropped; BatchNorm counters that older torch
    did not save are filled with 0; any other difference (missing or extra keys, shapes: another
    configuration such as a different keypoint count) is named."""
    missing_parts = [p for p in FOMM_PARTS if p not in checkpoint]
    if missing_parts:
        raise ValueError(f'not a FOMM checkpoint: no {missing_parts} (its keys: '
                         f'{sorted(checkpoint)[:8]})')
    target = model.state_dict()
    out = {}
    for part in FOMM_PARTS:
        for key, value in checkpoint[part].items():
            out[f'{part}.{key.removeprefix("module.")}'] = value
    for key in target:
        if key.endswith('num_batches_tracked') and key not in out:
            out[key] = torch.zeros((), dtype=torch.long)
    extra, absent = sorted(set(out) - set(target)), sorted(set(target) - set(out))
    shapes = [f'{k}: {tuple(out[k].shape)} vs {tuple(target[k].shape)}'
              for k in set(out) & set(target) if out[k].shape != target[k].shape]
    if extra or absent or shapes:
        raise ValueError('the FOMM checkpoint does not fit the configured FOMMAnimator '
                         f'(another num_kp, block_expansion or block count?): missing '
                         f'{absent[:5]}, unexpected {extra[:5]}, shapes {sorted(shapes)[:5]}')
    return out


def load_fomm(path: str | Path, model: nn.Module) -> dict:
    """Read FOMM's file (tensors and plain containers only) and convert it for ``model``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FOMM checkpoint {path} not found: FOMM's vox-cpk.pth.tar "
                                '(see projects/fadm/README.md#production)')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch raises several kinds)
        raise ValueError(f'{path} is not a readable FOMM checkpoint: {err}') from err
    return fomm_to_mmext(checkpoint, model)
