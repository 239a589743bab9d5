import json

import numpy as np
import pytest
import torch
from torch import nn

from mmext.quant import ModuleSwap, QConv2d
from mmext.quant.export import export_quantized, load_quantized


class Net(nn.Module):
    """Convs, an attention block and a head: every quantized layer kind the export handles."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.conv = nn.Conv2d(16, 16, 3, padding=1, groups=2)
        self.binary = nn.Conv2d(16, 16, 1)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.binary(torch.relu(self.conv(self.stem(x))))
        tokens = x.flatten(2).transpose(1, 2)
        return self.head(self.attn(tokens, tokens, tokens)[0].mean(dim=1))


def _quantized_net(seed):
    torch.manual_seed(seed)
    return ModuleSwap(w_bits=4, a_bits=4, attn_bits=8, skip=['stem'],
                      overrides=[dict(pattern='binary', w_bits=1, a_bits=1),
                                 dict(pattern='head', w_bits=3)])(Net())


def test_export_round_trip_reproduces_the_fake_quantized_outputs_exactly(tmp_path):
    model = _quantized_net(0).train()
    for _ in range(10):  # LSQ+ initialises its activation steps over 10 training batches
        model(torch.randn(2, 3, 8, 8))
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    path = tmp_path / 'net.safetensors'
    records = export_quantized(model, path)
    assert {r['name']: (r['kind'], r['bits']) for r in records} == {
        'conv': ('int', 4), 'binary': ('binary', 1), 'attn.q_proj': ('int', 4),
        'attn.k_proj': ('int', 4), 'attn.v_proj': ('int', 4), 'attn.out_proj': ('int', 4),
        'head': ('int', 3)}

    from safetensors import safe_open
    with safe_open(str(path), 'pt') as f:
        keys = set(f.keys())
        ints = f.get_tensor('conv.weight.int')
        bits = f.get_tensor('binary.weight.sign_bits')
        assert json.loads(f.metadata()['layers'])[0]['name'] == 'conv'
    assert 'conv.weight' not in keys and 'stem.weight' in keys  # latent floats stay home
    assert ints.dtype == torch.int8 and ints.min() >= -8 and ints.max() <= 7
    assert bits.dtype == torch.uint8 and bits.shape == (16, 2)  # 16 weights -> 2 bytes
    signs = np.unpackbits(bits.numpy(), axis=1)[:, :16].astype(bool)
    np.testing.assert_array_equal(signs, (model.binary.weight >= 0).reshape(16, 16).numpy())
    fake = model.conv.w_quantizer(model.conv.weight)
    assert torch.equal(ints.float() * model.conv.w_quantizer.scale.view(-1, 1, 1, 1), fake)

    rebuilt = load_quantized(_quantized_net(1).eval(), path)
    assert torch.equal(rebuilt(x), expected)
    assert isinstance(rebuilt.conv, QConv2d)


def test_export_refuses_uninitialised_models_and_loads_refuse_wrong_files(tmp_path):
    with pytest.raises(RuntimeError, match='run the model forward once'):
        export_quantized(_quantized_net(0), tmp_path / 'x.safetensors')
    with pytest.raises(FileNotFoundError, match='no such export'):
        load_quantized(_quantized_net(0), tmp_path / 'missing.safetensors')
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'\x00' * 20)
    with pytest.raises(ValueError, match='not a readable safetensors file'):
        load_quantized(_quantized_net(0), corrupt)
    from safetensors.torch import save_file
    foreign = tmp_path / 'foreign.safetensors'
    save_file({'w': torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match='not written by mmext.quant.export_quantized'):
        load_quantized(_quantized_net(0), foreign)
    model = _quantized_net(0)
    model(torch.randn(2, 3, 8, 8))
    export_quantized(model, tmp_path / 'net.safetensors')
    other = ModuleSwap(w_bits=4, a_bits=4, skip=['stem', 'head'])(Net())
    with pytest.raises(ValueError, match="only in the file \\['head'\\]"):
        load_quantized(other, tmp_path / 'net.safetensors')
