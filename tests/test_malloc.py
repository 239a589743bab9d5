"""glibc malloc's thresholds from a config (mmext/utils/malloc.py): the checks of
``env_cfg.malloc_cfg``, and that fixing them ends the page faults of a heap that glibc trims
after every round of large frees (in a child process: the setting is process-wide)."""
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


TRIMMED_HEAP = """
import resource, sys
import torch
from mmext.utils.malloc import configure_malloc
if sys.argv[1] == 'fixed':
    assert configure_malloc(32 * 2**20, 256 * 2**20)

def one_round():  # 60 MB in blocks of 3 MB, written, then all freed
    blocks = [torch.empty(3 * 2**20, dtype=torch.uint8).fill_(1) for _ in range(20)]
    del blocks

for _ in range(3):
    one_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    one_round()
print('faults per round', (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc only')
def test_fixed_thresholds_end_the_faults_of_a_trimmed_heap(tmp_path):
    script = tmp_path / 'rounds.py'
    script.write_text(TRIMMED_HEAP)
    faults = {}
    for mode in ('adaptive', 'fixed'):
        result = run_tool(script, mode, env=dict(PYTHONPATH=str(REPO)))
        assert result.returncode == 0, result.stdout[-2000:]
        faults[mode] = float(result.stdout.split('faults per round')[-1])
    # glibc's adaptive trim threshold (2 x the 3 MB blocks) gives the 60 MB back after every
    # round and faults it in again (15,000 pages); fixed at 256 MiB, the heap keeps it
    assert faults['adaptive'] > 5000, faults
    assert faults['fixed'] < faults['adaptive'] / 20, faults
