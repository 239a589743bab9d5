import json

import pytest

from .conftest import REPO, run_tool


def _deit_tiny_macs(binary_patch_embed: bool) -> tuple[int, int]:
    """(all MACs, full-precision MACs) of DeiT-Tiny at 224 x 224, by hand: 196 patches + class
    token, 192 dims, 3 heads, MLP 768, 12 blocks, 1000 classes."""
    n, d, hidden = 197, 192, 768
    patch_embed, head = 196 * (16 * 16 * 3) * d, d * 1000
    block = n * d * 3 * d + 2 * n * n * d + n * d * d + 2 * n * d * hidden
    total = patch_embed + 12 * block + head
    return total, head + (0 if binary_patch_embed else patch_embed)


@pytest.mark.parametrize('binary_patch_embed', [False, True])
def test_count_ops_on_the_1_bit_deit_tiny_configs(binary_patch_embed, tmp_path):
    name = 'deit-tiny_w1a1-attn1-binary-patch-embed_4xb256_in1k.py' if binary_patch_embed \
        else 'deit-tiny_w1a1-attn1_4xb256_in1k.py'
    out = tmp_path / 'ops.json'
    result = run_tool('tools/analysis/count_ops.py', REPO / 'configs/quant' / name, '--out', out)
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'theoretical acceleration' in result.stdout
    assert 'backbone.layers.11.attn.scaled_dot_product_attention[P@v]' in result.stdout
    ops = json.loads(out.read_text())
    total, full_precision = _deit_tiny_macs(binary_patch_embed)
    assert ops['float_flops'] == total
    bireal = ops['conventions']['bireal64']
    assert bireal['flops'] == full_precision and bireal['bops'] == total - full_precision
    assert bireal['acceleration'] == pytest.approx(
        total / (full_precision + (total - full_precision) / 64), rel=1e-3)
    # parameters: binary weights at 1 bit, the rest at 32
    assert ops['size_bits'] < ops['float_size_bits'] / 9


def test_count_ops_on_the_4_bit_detr_r50_config(tmp_path):
    out = tmp_path / 'ops.json'
    result = run_tool('tools/analysis/count_ops.py',
                      REPO / 'configs/quant/detr_r50_w4a4-attn8_8xb2-150e_coco.py',
                      '--shape', '128', '192', '--quiet', '--out', out)
    assert result.returncode == 0, result.stdout[-3000:]
    modules = {m['name']: m for m in json.loads(out.read_text())['modules']}
    assert (modules['backbone.conv1']['w_bits'], modules['backbone.conv1']['a_bits']) == (8, 8)
    assert modules['backbone.layer1.0.conv1']['w_bits'] == 4
    matmul = modules['decoder.layers.5.cross_attn.attn.attention[P@v]']
    assert (matmul['w_bits'], matmul['a_bits']) == (8, 8)
    assert matmul['macs'] == 100 * (4 * 6) * 256  # queries x (128/32 * 192/32) keys x dims
    assert 'linear32' in result.stdout and 'bireal64' in result.stdout


def test_count_ops_feeds_a_one_channel_network_its_own_channels(tmp_path):
    """DCP-NAS's Fashion-MNIST network takes 1-channel images: the count runs on an image with
    the channels of the model's first convolution (a 3-channel one was refused before)."""
    out = tmp_path / 'ops.json'
    result = run_tool('tools/analysis/count_ops.py',
                      REPO / 'configs/dcpnas/dcpnas-retrain_1xb128-3e_fashion-mnist.py',
                      '--shape', '28', '28', '--quiet', '--out', out)
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'theoretical acceleration' in result.stdout
    modules = json.loads(out.read_text())['modules']
    assert any(m['w_bits'] == 1 and m['macs'] > 0 for m in modules)


def test_count_ops_refuses_a_config_without_a_scope(tmp_path):
    config = tmp_path / 'bare.py'
    config.write_text("model = dict(type='Linear')\n")
    result = run_tool('tools/analysis/count_ops.py', config)
    assert result.returncode != 0 and 'sets no default_scope' in result.stdout


def test_count_ops_on_the_qdetr_config_compares_with_its_float_detector(tmp_path):
    out = tmp_path / 'ops.json'
    result = run_tool('tools/analysis/count_ops.py', REPO / 'configs/qdetr/r50_4bit.py',
                      '--shape', '128', '192', '--quiet', '--out', out)
    assert result.returncode == 0, result.stdout[-3000:]
    ops = json.loads(out.read_text())
    assert ops['float_flops'] > 3e9 and ops['conventions']['linear32']['acceleration'] > 7


def test_count_ops_compares_a_binary_dcpnas_network_with_its_real_valued_twin(tmp_path):
    """The released ImageNet model (a distiller whose classifier has 1-bit cells): the float
    baseline is the same network with binary=False, not the model itself."""
    out = tmp_path / 'ops.json'
    result = run_tool('tools/analysis/count_ops.py',
                      REPO / 'configs/dcpnas/dcpnas-released-retrain-step2_8xb64-256e_in1k.py',
                      '--quiet', '--shape', '64', '64', '--out', out)
    assert result.returncode == 0, result.stdout[-3000:]
    ops = json.loads(out.read_text())
    bireal = ops['conventions']['bireal64']
    assert bireal['bops'] > 0 and ops['float_flops'] > bireal['flops']
    assert bireal['acceleration'] > 1.5
    assert ops['float_size_bits'] > 4 * ops['size_bits']
