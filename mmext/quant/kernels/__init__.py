"""Low-bit CPU kernels: bit-packed binary GEMM and convolution, and the int8 helpers around the
integer GEMM torch ships (``torch._int_mm``), as a C++ extension built with the system compiler
on first use and cached outside the clone, with a pure-torch reference that gives the same
integers.

Sign packing (the runtime's, not the export file's): 64 signs per int64 word, bit j of word w is
1 where element ``64 w + j`` is >= 0; bits past a row's end are 0.

    ops = lowbit_ops()         # the compiled module, or None (one warning says why)
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

from mmext.utils.cache import cache_root

SOURCE = Path(__file__).with_name('lowbit.cpp')
WORD = 64
BLOCK_N = 16  # the kernel's output-channel block: weight words are padded to a multiple
_STATE: dict = {}


# -ffp-contract=off: no multiply and add fused into one rounding unless the source says so
# (std::fma, *_fmadd_*), so the passes round as the torch operations they stand for
CFLAGS = ['-O3', '-fopenmp', '-ffp-contract=off']


def extension_dir() -> Path:
    """Where the compiled extension is kept: per torch version and hash of source and flags, so
    that a new source, flags or torch build afresh and nothing is rebuilt otherwise."""
    digest = hashlib.sha256(SOURCE.read_bytes() + ' '.join(CFLAGS).encode()).hexdigest()[:12]
    return cache_root() / 'torch_extensions' / f'torch-{torch.__version__}' / f'lowbit-{digest}'


def lowbit_ops():
    """The compiled low-bit kernels (binary GEMM, convolution and batched products; int8
    quantization, im2col and epilogue), built on first use (about 45 s here) and cached; None
    where they cannot be built (no compiler, a failed build), after one warning that names the
    cause and that the pure-torch reference runs instead."""
    if 'ops' in _STATE:
        return _STATE['ops']
    ops, error = None, None
    folder = extension_dir()
    try:
        from torch.utils.cpp_extension import load
        folder.mkdir(parents=True, exist_ok=True)
        ops = load(name='mmext_lowbit_kernels', sources=[str(SOURCE)],
                   build_directory=str(folder), extra_cflags=CFLAGS,
                   extra_ldflags=['-fopenmp'], verbose=False)
    except Exception as exc:  # no compiler, failed build: the reference still runs
        error = exc
    if ops is None:
        text = str(error) or type(error).__name__
        lines = [line for line in text.splitlines() if 'error' in line.lower()]
        cause = (lines[-1] if lines else text.splitlines()[0])[:400]
        warnings.warn(f'mmext low-bit kernels unavailable ({cause}); the pure-torch reference '
                      'runs instead (same results, float speed). Building them needs a C++ '
                      'compiler (g++) and ninja.', stacklevel=2)
    _STATE['ops'] = ops
    return ops


# ------------------------------------------------------------------------- reference (torch)
def pack_signs_reference(x: torch.Tensor) -> torch.Tensor:
    """(M, K) float -> (M, ceil(K / 64)) int64 sign words (the layout of the compiled kernel)."""
    m, k = x.shape
    words = -(-k // WORD)
    bits = torch.zeros(m, words * WORD, dtype=torch.int64)
    bits[:, :k] = (x >= 0).long()
    weights = torch.ones(WORD, dtype=torch.int64) << torch.arange(WORD, dtype=torch.int64)
    # bit 63 makes the word negative as int64: two's complement keeps the bits
    return (bits.view(m, words, WORD) * weights).sum(-1)


def unpack_signs(words: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of packing: (M, W) int64 -> (M, k) float in {-1, +1}."""
    shifts = torch.arange(WORD, dtype=torch.int64)
    bits = (words[..., None] >> shifts) & 1
    return (bits.reshape(*words.shape[:-1], -1)[..., :k] * 2 - 1).float()
