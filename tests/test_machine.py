"""The benchmarks' description of the CPU they ran on."""
from mmext.utils.machine import cpu_description

INTEL = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 avx512_vpopcntdq amx_bf16 amx_int8

processor\t: 1
model name\t: another name that must not be read
"""


def test_names_the_model_its_family_and_the_vector_units(tmp_path):
    path = tmp_path / 'cpuinfo'
    path.write_text(INTEL)
    text = cpu_description(path)
    assert text.startswith('Intel(R) Xeon(R) Platinum 8480+ (family 6, model 143; AVX-512 VNNI '
                           'BF16 VPOPCNTDQ AMX-INT8 AMX-BF16), ')
    assert text.endswith(' threads') and 'another' not in text


def test_without_avx512_and_without_cpuinfo(tmp_path):
    path = tmp_path / 'cpuinfo'
    path.write_text('model name\t: Some CPU\nflags\t\t: fpu sse2 avx2\n')
    assert cpu_description(path).startswith('Some CPU (family ?, model ?; no AVX-512), ')
    missing = cpu_description(tmp_path / 'missing')       # the platform's words instead
    assert ' CPU, ' in missing and missing.endswith(' threads') and '(' not in missing
