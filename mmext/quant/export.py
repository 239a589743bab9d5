"""Export a quantized model with integer (2..8 bit) and bit-packed (1 bit) weights, and load it
back.

The file is a ``safetensors`` file (readable from C++, Rust, NumPy and others) holding:

- for each quantized QLinear / QConv2d weight of b = 2..8 bits: ``<layer>.weight.int`` (int8,
  the weight's shape, values in [Qn, Qp]) and ``<layer>.weight.scale`` (float32, one per output
  channel or one per tensor): ``W_q = int * scale``;
- for each 1-bit weight: ``<layer>.weight.sign_bits`` (uint8, shape (C_out, ceil(K / 8)), one
  bit per weight, 1 = +1, big-endian bit order as ``numpy.packbits``, K = in * kh * kw) and
  ``<layer>.weight.scale`` (float32, C_out): ``W_b = scale * (2 * bit - 1)``;
- every other entry of the model's state dict, float as trained (biases, normalisation,
  activation quantizers' steps and zero points, float layers);
- metadata ``format`` = ``mmext-quant/1``, ``layers``, a JSON list with one record per
  quantized weight: name, kind (``int`` or ``binary``), bits, shape, Qn, Qp, and ``sha256``, a
  digest of every tensor (name, dtype, shape, bytes): a file changed after export is refused.

:func:`load_quantized` rebuilds the weights from the integers into a model of the same
structure (the config's quantized model), whose outputs then equal those of the exported model
exactly: the rebuilt weights are the very values the fake quantizer produced.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .layers import QConv2d, QLinear
from .quantizers import LSQQuantizer, WeightBinarizer

FORMAT = 'mmext-quant/1'


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        digest.update(f'{key}|{t.dtype}|{list(t.shape)}|'.encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    """QLinear / QConv2d layers whose weight quantizer is LSQ (2..8 bits) or binary."""
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, (QLinear, QConv2d)):
            wq = module.w_quantizer
            if isinstance(wq, WeightBinarizer) or (isinstance(wq, LSQQuantizer) and wq.enabled):
                layers[name] = module
    return layers


def _check_initialised(name: str, quantizer: nn.Module) -> None:
    """An LSQ step, or a learnable binary scale, is set from the weights by the first forward;
    before that the exported value would be a placeholder the model never uses."""
    if isinstance(quantizer, WeightBinarizer):
        ready = not quantizer.learnable_scale or int(quantizer.init_count) > 0
    else:
        ready = quantizer.initialized
    if not ready:
        raise RuntimeError(f'{name}: its weight quantizer has not initialised its step yet; run '
                           'the model forward once (or load a trained checkpoint) before export')


@torch.no_grad()
def export_quantized(model: nn.Module, path: str | Path) -> list[dict]:
    """Write ``model`` (after the module swap, trained or loaded) to ``path``; returns the
    layer records."""
    from safetensors.torch import save_file
    tensors, records = {}, []
    layers = _quantized_layers(model)
    for name, layer in layers.items():
        w, wq = layer.weight.detach().float(), layer.w_quantizer
        prefix = f'{name}.weight' if name else 'weight'
        _check_initialised(name, wq)
        if isinstance(wq, WeightBinarizer):
            scale = wq.scale.detach().float() if wq.learnable_scale else \
                w.abs().mean(dim=list(range(1, w.dim())))
            signs = (w >= 0).reshape(w.shape[0], -1).cpu().numpy()
            tensors[f'{prefix}.sign_bits'] = torch.from_numpy(np.packbits(signs, axis=1))
            tensors[f'{prefix}.scale'] = scale.reshape(-1).contiguous()
            records.append(dict(name=name, kind='binary', bits=1, shape=list(w.shape)))
        else:
            scale = wq.scale.detach().float()
            view = [-1] + [1] * (w.dim() - 1) if wq.channel_dim is not None else [1]
            ints = torch.clamp(torch.round(w / scale.view(view)), wq.qn, wq.qp)
            tensors[f'{prefix}.int'] = ints.to(torch.int8).contiguous()
            tensors[f'{prefix}.scale'] = scale.contiguous()
            records.append(dict(name=name, kind='int', bits=wq.bits, shape=list(w.shape),
                                qn=wq.qn, qp=wq.qp))
    # the latent float weights stay home; their quantizers' steps are the exported scales
    exported = tuple(f'{name}.{part}' if name else part for name in layers
                     for part in ('weight', 'w_quantizer.'))
    for key, value in model.state_dict().items():
        if not key.startswith(exported):
            tensors[key] = value.detach().cpu().contiguous()
    tensors = {k: v.cpu() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata=dict(format=FORMAT, layers=json.dumps(records),
                                                sha256=tensors_digest(tensors)))
    return records


def _read(path: str | Path) -> tuple[dict[str, torch.Tensor], list[dict]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such export; write one with '
                                'mmext.quant.export_quantized or tools/deploy/export_quantized.py')
    try:
        from safetensors import safe_open
        with safe_open(str(path), 'pt') as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f'{path} is not a readable safetensors file ({error}); export it '
                         'again') from error
    if metadata.get('format') != FORMAT:
        raise ValueError(f"{path} has format {metadata.get('format')!r}, not {FORMAT!r}: it "
                         'was not written by mmext.quant.export_quantized')
    if 'sha256' in metadata and tensors_digest(tensors) != metadata['sha256']:
        raise ValueError(f'{path} was changed after export: its tensors no longer match the '
                         'checksum written with them; export the checkpoint again')
    try:
        return tensors, json.loads(metadata['layers'])
    except (KeyError, json.JSONDecodeError) as error:
        raise ValueError(f'{path} has no readable layer list ({error}); export it '
                         'again') from error


def dequantize(tensors: dict[str, torch.Tensor], record: dict) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """The weight (record's shape) and scale of one exported layer, from its integers."""
    prefix = f"{record['name']}.weight" if record['name'] else 'weight'
    scale = tensors[f'{prefix}.scale']
    shape = record['shape']
    if record['kind'] == 'binary':
        k = math.prod(shape[1:])
        bits = np.unpackbits(tensors[f'{prefix}.sign_bits'].numpy(), axis=1, count=k)
        signs = torch.from_numpy(bits.astype(np.float32) * 2 - 1).reshape(shape)
        return signs * scale.view([-1] + [1] * (len(shape) - 1)), scale
    ints = tensors[f'{prefix}.int'].float()
    view = [-1] + [1] * (len(shape) - 1) if scale.numel() > 1 else [1]
    return ints * scale.view(view), scale


@torch.no_grad()
def load_quantized(model: nn.Module, path: str | Path) -> nn.Module:
    """Fill ``model`` (the same quantized structure as the exported one) from ``path``:
    weights rebuilt from their integers or sign bits, everything else as stored. 1-bit layers
    get a binarizer with the stored scale fixed, so that their outputs are bit-exact too."""
    tensors, records = _read(path)
    layers = _quantized_layers(model)
    names = {r['name'] for r in records}
    if names != set(layers):
        raise ValueError(f'{path} does not fit this model: quantized layers only in the file '
                         f'{sorted(names - set(layers))[:5]}, only in the model '
                         f'{sorted(set(layers) - names)[:5]}; build the model from the config '
                         'that was exported')
    for record in records:
        layer = layers[record['name']]
        if list(layer.weight.shape) != record['shape']:
            raise ValueError(f"{record['name']}: weight shape {list(layer.weight.shape)} in the "
                             f"model, {record['shape']} in {path}")
        weight, scale = dequantize(tensors, record)
        layer.weight.copy_(weight.to(layer.weight))
        if record['kind'] == 'binary':
            fixed = WeightBinarizer(learnable_scale=True, num_channels=scale.numel(),
                                    ste=layer.w_quantizer.ste).to(layer.weight.device)
            fixed.scale.requires_grad_(False)
            fixed.scale.copy_(scale)
            fixed.init_count.fill_(1)
            layer.w_quantizer = fixed
        else:
            layer.w_quantizer.scale.copy_(scale)
            layer.w_quantizer.init_count.fill_(layer.w_quantizer.init_batches)
    rest = {k: v for k, v in tensors.items()
            if not k.endswith(('.weight.int', '.weight.sign_bits', '.weight.scale'))}
    missing, unexpected = model.load_state_dict(rest, strict=False)
    exported = tuple(f"{r['name']}.{part}" if r['name'] else part for r in records
                     for part in ('weight', 'w_quantizer.'))
    missing = [k for k in missing if not k.startswith(exported)]
    if missing or unexpected:
        raise ValueError(f'{path} does not fit this model: missing {missing[:5]}, unexpected '
                         f'{unexpected[:5]}')
    return model
