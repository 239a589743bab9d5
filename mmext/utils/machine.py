"""What a benchmark ran on, in words, for its results file: the ratios of low-bit kernels
against float32 depend on the CPU's vector units (AVX-512 VNNI, BF16, AMX, VPOPCNTDQ) and its
vendor's float32 GEMM, so a figure is read with the CPU that produced it."""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

# the instruction set extensions the low-bit kernels and torch's int8 / bfloat16 GEMMs use
_FEATURES = {'avx512f': 'AVX-512', 'avx512_vnni': 'VNNI', 'avx512_bf16': 'BF16',
             'avx512_vpopcntdq': 'VPOPCNTDQ', 'amx_int8': 'AMX-INT8', 'amx_bf16': 'AMX-BF16'}


def _first_processor(cpuinfo: str | Path) -> dict[str, str] | None:
    """The first processor's ``key: value`` lines of Linux's ``/proc/cpuinfo``; None where it
    cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.split('\n\n', 1)[0].splitlines():
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
    return fields


@functools.cache
def cpu_flags(cpuinfo: str | Path = '/proc/cpuinfo') -> frozenset[str]:
    """The CPU's feature flags (``avx512_vnni``, ``amx_int8``, ...) from ``/proc/cpuinfo``;
    empty where it cannot be read (not Linux): callers then take their portable choice."""
    fields = _first_processor(cpuinfo)
    return frozenset((fields or {}).get('flags', '').split())


def cpu_description(cpuinfo: str | Path = '/proc/cpuinfo') -> str:
    """'<model name> (family F, model M; AVX-512 VNNI BF16 VPOPCNTDQ), T threads' from Linux's
    ``/proc/cpuinfo`` (the first processor's lines); the platform's words where it cannot be
    read. T is torch's intra-op thread count."""
    threads = f'{torch.get_num_threads()} threads'
    fields = _first_processor(cpuinfo)
    if fields is None:
        return f'{platform.processor() or platform.machine()} CPU, {threads}'
    flags = set(fields.get('flags', '').split())
    features = ' '.join(name for flag, name in _FEATURES.items() if flag in flags) or 'no AVX-512'
    name = fields.get('model name') or platform.processor() or platform.machine()
    family = f"family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}"
    return f'{name} ({family}; {features}), {threads}'
