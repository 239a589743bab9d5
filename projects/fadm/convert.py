"""Released animator checkpoints into mmext's animator modules: FOMM's ``vox-cpk.pth.tar``
(``kp_detector`` and ``generator`` state dicts) into :class:`FOMMAnimator`, and the face-vid2vid
re-implementation's ``00000189-checkpoint.pth.tar`` (``kp_detector``, ``he_estimator``,
``generator``) into :class:`FaceVid2VidAnimator`."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FOMM_PARTS = ('kp_detector', 'generator')
FACEVID2VID_PARTS = ('kp_detector', 'he_estimator', 'generator')


def fit_state_dict(state: dict, model: nn.Module, name: str, fix: str) -> dict:
    """``state`` checked against ``model``'s state dict: BatchNorm counters that older torch did
    not save are filled with 0; any other difference (missing or extra keys, shapes) is named,
    with ``fix``."""
    state = dict(state)
    target = model.state_dict()
    for key in target:
        if key.endswith('num_batches_tracked') and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    extra, absent = sorted(set(state) - set(target)), sorted(set(target) - set(state))
    shapes = [f'{k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)}'
              for k in set(state) & set(target) if state[k].shape != target[k].shape]
    if extra or absent or shapes:
        raise ValueError(f'the {name} checkpoint does not fit the configured '
                         f'{type(model).__name__} ({fix}): missing {absent[:5]}, unexpected '
                         f'{extra[:5]}, shapes {sorted(shapes)[:5]}')
    return state


def parts_to_state_dict(checkpoint: dict, model: nn.Module, parts: tuple[str, ...],
                        name: str, fix: str) -> dict:
    """A checkpoint of one state dict per sub-network (``checkpoint[part]``, saved from
    ``model.<part>``) -> a state dict of ``model``: ``module.`` prefixes (a DataParallel save)
    dropped, entries of other parts (discriminator, optimizers, epoch) ignored, then
    :func:`fit_state_dict`."""
    missing_parts = [p for p in parts if p not in checkpoint]
    if missing_parts:
        raise ValueError(f'not a {name} checkpoint: no {missing_parts} (its keys: '
                         f'{sorted(checkpoint)[:8]})')
    out = {f'{part}.{key.removeprefix("module.")}': value
           for part in parts for key, value in checkpoint[part].items()}
    return fit_state_dict(out, model, name, fix)


def fomm_to_mmext(checkpoint: dict, model: nn.Module) -> dict:
    """FOMM's checkpoint dict -> a state dict of ``model`` (a :class:`FOMMAnimator`)."""
    return parts_to_state_dict(checkpoint, model, FOMM_PARTS, 'FOMM',
                               'another num_kp, block_expansion or block count?')


def facevid2vid_to_mmext(checkpoint: dict, model: nn.Module) -> dict:
    """The face-vid2vid re-implementation's checkpoint dict -> a state dict of ``model`` (a
    :class:`FaceVid2VidAnimator`). Its SPADE generator (``--gen spade``) only: the original
    generator's file has ``resblocks_2d`` / ``up_blocks`` / ``final`` in place of ``decoder``."""
    return parts_to_state_dict(
        checkpoint, model, FACEVID2VID_PARTS, 'face-vid2vid',
        'another num_kp or feature size, or a checkpoint of the non-SPADE generator, which '
        'mmext does not build?')


def read_checkpoint(path: str | Path, name: str, expected: str,
                    section: str = 'production') -> dict:
    """Load a released file with ``weights_only`` (tensors and plain containers); a missing or
    unreadable file is named with what is expected there and the README section about it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{name} checkpoint {path} not found: {expected} '
                                f'(see projects/fadm/README.md#{section})')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch raises several kinds)
        raise ValueError(f'{path} is not a readable {name} checkpoint: {err}') from err


def load_fomm(path: str | Path, model: nn.Module) -> dict:
    """Read FOMM's file (tensors and plain containers only) and convert it for ``model``."""
    return fomm_to_mmext(read_checkpoint(path, 'FOMM', "FOMM's vox-cpk.pth.tar"), model)


def load_facevid2vid(path: str | Path, model: nn.Module) -> dict:
    """Read the face-vid2vid file (tensors and plain containers only) and convert it."""
    return facevid2vid_to_mmext(
        read_checkpoint(path, 'face-vid2vid',
                        "the re-implementation's 00000189-checkpoint.pth.tar"), model)
