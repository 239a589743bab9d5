"""glibc malloc's thresholds from a config (mmext/utils/malloc.py): the checks of
``env_cfg.malloc_cfg``, and that fixing them keeps freed blocks for the next allocations
instead of faulting them in again (in a child process: the setting is process-wide)."""
import json
import platform

import pytest
from mmengine.config import Config

from mmext.utils.malloc import configure_malloc, malloc_cfg_from

from .conftest import REPO, run_tool

GOOD = dict(mmap_threshold=32 * 2**20, trim_threshold=256 * 2**20)


@pytest.mark.parametrize('config', [
    'configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py',
    'configs/qdetr/qdetr_conditional-detr_mobilenetv2-s16_w4a4-attn8_fashion-scenes.py',
    'configs/qdetr/qdetr_r50_w4a4-attn8_8xb2-500e_coco.py',
    'configs/bivit/deit-tiny_4xb256-300e_in1k.py',
    'configs/bivit/bivit_deit-tiny-p4_1xb128-20e_fashion-mnist.py',
])
def test_the_configs_fix_the_thresholds_and_keep_their_libraries_env_cfg(config):
    env_cfg = Config.fromfile(REPO / config).env_cfg
    assert malloc_cfg_from(env_cfg) == GOOD
    assert {'mp_cfg', 'dist_cfg'} <= set(env_cfg)  # mmdet's / mmpretrain's, merged with it


def test_the_configs_thresholds_pass_and_none_is_none():
    assert malloc_cfg_from(dict(malloc_cfg=GOOD)) == GOOD
    assert malloc_cfg_from(dict(mp_cfg={})) is None and malloc_cfg_from(None) is None
    assert malloc_cfg_from(dict(malloc_cfg=None)) is None  # --cfg-options env_cfg.malloc_cfg=None


@pytest.mark.parametrize('cfg, pattern', [
    (dict(mmap_threshold=2**20), r"takes exactly \('mmap_threshold', 'trim_threshold'\)"),
    (dict(GOOD, top_pad=0), r"got \['mmap_threshold', 'top_pad', 'trim_threshold'\]"),
    ('32M', r'got str'),
    (dict(GOOD, trim_threshold=-1), r'trim_threshold must be a whole number of bytes'),
    (dict(GOOD, trim_threshold=2.5e8), r'trim_threshold must be a whole number.*250000000\.0'),
    (dict(GOOD, mmap_threshold=True), r'mmap_threshold must be a whole number'),
    (dict(GOOD, trim_threshold=2**31), r'from 0 to 2147483647 \(a C int\)'),
    (dict(GOOD, mmap_threshold=64 * 2**20), r"above glibc's limit of 33554432 \(32 MiB\)"),
])
def test_a_malformed_malloc_cfg_is_named(cfg, pattern):
    with pytest.raises(ValueError, match=pattern):
        malloc_cfg_from(dict(malloc_cfg=cfg))


def test_configure_malloc_checks_its_values_before_calling_glibc():
    with pytest.raises(ValueError, match=r"mmap_threshold 67108864 is above glibc's limit"):
        configure_malloc(64 * 2**20, 256 * 2**20)


ROUNDS = """
import ctypes, importlib.util, json, resource, sys
spec = importlib.util.spec_from_file_location('malloc', sys.argv[2])  # without mmext's imports
malloc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(malloc)


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
        'fordblks', 'keepcost')]


libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == 'fixed':
    assert malloc.configure_malloc(32 * 2**20, 256 * 2**20)


def one_round():  # 60 MB in blocks of 3 MB, written; -> (blocks mapped on their own, faults)
    before, mapped_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, \
        libc.mallinfo2().hblks
    blocks = [libc.malloc(3 * 2**20) for _ in range(20)]
    for block in blocks:
        libc.memset(block, 1, 3 * 2**20)
    mapped = libc.mallinfo2().hblks - mapped_before
    for block in blocks:
        libc.free(block)
    return mapped, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


first, second = one_round(), one_round()
print(json.dumps(dict(mapped=first[0], heap_kept=libc.mallinfo2().arena >= 60 * 2**20,
                      second_round_faults=second[1])))
"""


def _glibc_with_mallinfo2() -> bool:
    library, version = platform.libc_ver()
    return library == 'glibc' and tuple(map(int, version.split('.')[:2])) >= (2, 33)


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason='glibc 2.33 or later (mallinfo2)')
def test_fixed_thresholds_keep_freed_memory_for_the_next_round(tmp_path):
    script = tmp_path / 'rounds.py'
    script.write_text(ROUNDS)
    out = {}
    for mode in ('adaptive', 'fixed'):
        result = run_tool(script, mode, REPO / 'mmext/utils/malloc.py')
        assert result.returncode == 0, result.stdout[-2000:]
        out[mode] = json.loads(result.stdout.strip().splitlines()[-1])
    # glibc's defaults map each 3 MB block on its own (above 128 KiB) and unmap it when freed,
    # so the second round faults its 60 MB in again (15,000 pages); with the configs'
    # thresholds the blocks come from the heap, which keeps them for the second round
    assert out['adaptive']['mapped'] == 20 and not out['adaptive']['heap_kept'], out
    assert out['adaptive']['second_round_faults'] > 10000, out
    assert out['fixed']['mapped'] == 0 and out['fixed']['heap_kept'], out
    assert out['fixed']['second_round_faults'] < 100, out
