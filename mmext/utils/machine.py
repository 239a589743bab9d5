"""What a benchmark ran on, in words, for its results file: the ratios of low-bit kernels
against float32 depend on the CPU's vector units (AVX-512 VNNI, BF16, AMX, VPOPCNTDQ) and its
vendor's float32 GEMM, so a figure is read with the CPU that produced it."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

# the instruction set extensions the low-bit kernels and torch's int8 / bfloat16 GEMMs use
_FEATURES = {'avx512f': 'AVX-512', 'avx512_vnni': 'VNNI', 'avx512_bf16': 'BF16',
             'avx512_vpopcntdq': 'VPOPCNTDQ', 'amx_int8': 'AMX-INT8', 'amx_bf16': 'AMX-BF16'}


def cpu_description(cpuinfo: str | Path = '/proc/cpuinfo') -> str:
    """'<model name> (family F, model M; AVX-512 VNNI BF16 VPOPCNTDQ), T threads' from Linux's
    ``/proc/cpuinfo`` (the first processor's lines); the platform's words where it cannot be
    read. T is torch's intra-op thread count."""
    threads = f'{torch.get_num_threads()} threads'
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return f'{platform.processor() or platform.machine()} CPU, {threads}'
    fields: dict[str, str] = {}
    for line in text.split('\n\n', 1)[0].splitlines():
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get('flags', '').split())
    features = ' '.join(name for flag, name in _FEATURES.items() if flag in flags) or 'no AVX-512'
    name = fields.get('model name') or platform.processor() or platform.machine()
    family = f"family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}"
    return f'{name} ({family}; {features}), {threads}'
