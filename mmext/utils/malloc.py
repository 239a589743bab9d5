"""glibc malloc's two thresholds for a training process, from a config's ``env_cfg``.

glibc gives memory back to the system when more than ``trim_threshold`` bytes are free at the
top of a heap, and serves an allocation of ``mmap_threshold`` bytes or more with a mapping of
its own, unmapped when freed. Both start at 128 KiB and rise with the largest block freed
(up to 32 MiB for the mappings). A CPU training step that frees tens of MB at once in the
backward (a quantized model keeps each layer's input and its fake-quantized copy) goes over
that: the heap is trimmed after the step and its pages are faulted in and zeroed again during
the next one. Q-DETR's per-channel fused demo DETR took 9,400-12,500 minor page faults and
24-36 ms of system time per step, where the float one took none (README, "Page faults":
``benchmarks/quant_overhead.py --variants ...``, which counts them).

A config asks for fixed thresholds with ::

    env_cfg = dict(malloc_cfg=dict(mmap_threshold=32 * 2**20, trim_threshold=256 * 2**20))

``tools/train.py`` applies it (:func:`configure_malloc`, glibc's ``mallopt``) before it builds
the runner; mmengine's runner ignores the key. It is process-wide by nature, as the runner's
own ``mp_cfg`` (thread counts): only entry points call it, never the library. The process
then keeps up to ``trim_threshold`` of freed memory for its next allocations. Dataloader
workers started afterwards inherit it. Other C libraries (macOS, musl) are left as they are,
with a warning.
"""
from __future__ import annotations

import ctypes
import platform
import warnings
from collections.abc import Mapping

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3       # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 * 2**20                   # glibc's limit on 64-bit systems
INT_MAX = 2**31 - 1                               # mallopt takes a C int
KEYS = ('mmap_threshold', 'trim_threshold')


def malloc_cfg_from(env_cfg: Mapping | None) -> dict | None:
    """The checked ``env_cfg.malloc_cfg`` of a config (None where it has none, or where it is
    None: ``--cfg-options env_cfg.malloc_cfg=None`` keeps glibc's defaults): both keys, whole
    numbers of bytes, ``0 <= mmap_threshold <= 32 MiB`` (glibc's range), ``0 <= trim_threshold
    < 2 GiB`` (mallopt takes an int). Anything else raises a ValueError that names the key."""
    cfg = (env_cfg or {}).get('malloc_cfg')
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping) or set(cfg) != set(KEYS):
        got = sorted(cfg) if isinstance(cfg, Mapping) else type(cfg).__name__
        raise ValueError(f'env_cfg.malloc_cfg takes exactly {KEYS} (bytes), got {got}; e.g. '
                         'malloc_cfg=dict(mmap_threshold=32 * 2**20, trim_threshold=256 * 2**20)')
    for key in KEYS:
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
            raise ValueError(f'env_cfg.malloc_cfg.{key} must be a whole number of bytes from 0 '
                             f'to {INT_MAX} (a C int), got {value!r}')
    if cfg['mmap_threshold'] > MMAP_THRESHOLD_MAX:
        raise ValueError(f"env_cfg.malloc_cfg.mmap_threshold {cfg['mmap_threshold']} is above "
                         f"glibc's limit of {MMAP_THRESHOLD_MAX} (32 MiB); blocks at least that "
                         'large are always mapped on their own')
    return {key: cfg[key] for key in KEYS}


def configure_malloc(mmap_threshold: int, trim_threshold: int) -> bool:
    """Fix glibc's mmap and trim thresholds for this process (``mallopt``); values as
    :func:`malloc_cfg_from` checks them. -> True where set; False, with a warning, where the C
    library is not glibc."""
    malloc_cfg_from(dict(malloc_cfg=dict(mmap_threshold=mmap_threshold,
                                         trim_threshold=trim_threshold)))
    library, _ = platform.libc_ver()
    if library != 'glibc':
        warnings.warn(f"env_cfg.malloc_cfg sets glibc's malloc; this process's C library is "
                      f"{library or 'not glibc'}: its allocator is left as it is", stacklevel=2)
        return False
    libc = ctypes.CDLL(None)
    for parameter, value in ((M_MMAP_THRESHOLD, mmap_threshold),
                             (M_TRIM_THRESHOLD, trim_threshold)):
        if libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) != 1:
            raise RuntimeError(f'glibc refused mallopt({parameter}, {value})')
    return True
