"""Initialise an OpenMMLab backbone from a torchvision checkpoint whose keys are named otherwise.

mmdet's ``MobileNetV2`` and ``ResNet`` register their layers in the same order, with the same
shapes, as torchvision's; only the names differ (``features.0.0.weight`` versus
``conv1.conv.weight``). This initializer pairs the two state dicts in order and refuses the
checkpoint unless every pair agrees in shape and in the leaf name (weight, bias, running_mean,
...), so a wrong architecture cannot load silently.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from mmext.registry import QUANTIZERS, WEIGHT_INITIALIZERS


def map_state_dict_by_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                            drop_prefixes: tuple[str, ...] = ()) -> OrderedDict:
    """Rename ``source``'s tensors to ``target``'s keys, pairing them in order.

    Args:
        source: the checkpoint's state dict (e.g. torchvision's).
        target: the model's state dict, whose keys the result takes.
        drop_prefixes: source keys to leave out first (a classifier head).

    Raises:
        ValueError: the counts differ, or a pair differs in shape or leaf name.
    """
    src = [(k, v) for k, v in source.items() if not k.startswith(tuple(drop_prefixes))]
    if len(src) != len(target):
        raise ValueError(f'the checkpoint has {len(src)} tensors (after dropping {drop_prefixes}) '
                         f'but the model has {len(target)}: not the same architecture')
    mapped = OrderedDict()
    for (src_key, value), (dst_key, dst_value) in zip(src, target.items()):
        if src_key.rsplit('.', 1)[-1] != dst_key.rsplit('.', 1)[-1] or \
                value.shape != dst_value.shape:
            raise ValueError(f'checkpoint tensor {src_key} {tuple(value.shape)} does not match '
                             f'model tensor {dst_key} {tuple(dst_value.shape)}: not the same '
                             'architecture')
        mapped[dst_key] = value
    return mapped


@WEIGHT_INITIALIZERS.register_module(name='TorchvisionPretrained')
class TorchvisionPretrainedInit:
    """``init_cfg=dict(type='mmext.TorchvisionPretrained', checkpoint='torchvision://mobilenet_v2')``.

    Loads every tensor of the module (all but the state of mmext quantizers, after a module
    swap) and marks its sub-modules as initialised, so their own ``init_weights`` does not
    overwrite the loaded weights.

    Args:
        checkpoint: anything mmengine's ``CheckpointLoader`` reads: a path or
            ``torchvision://NAME``, which is looked up in torch's hub cache first
            (``make install`` puts the ImageNet MobileNetV2 there).
        drop_prefixes: checkpoint keys that are not in the backbone (the classifier).
    """

    def __init__(self, checkpoint: str, drop_prefixes: tuple[str, ...] = ('classifier.', 'fc.'),
                 map_location: str = 'cpu'):
        self.checkpoint = checkpoint
        self.drop_prefixes = tuple(drop_prefixes)
        self.map_location = map_location

    def __call__(self, module: torch.nn.Module) -> None:
        state = CheckpointLoader.load_checkpoint(self.checkpoint, map_location=self.map_location)
        state = state.get('state_dict', state)
        # The state of quantizers (after mmext's module swap) is not in a float checkpoint.
        quantizers = tuple(name + '.' for name, m in module.named_modules()
                           if name and type(m) in QUANTIZERS.module_dict.values())
        target = {k: v for k, v in module.state_dict().items() if not k.startswith(quantizers)}
        mapped = map_state_dict_by_order(state, target, self.drop_prefixes)
        missing, unexpected = module.load_state_dict(mapped, strict=False)
        assert not unexpected and all(k.startswith(quantizers) for k in missing), missing
        # mmengine's BaseModule.init_weights runs this initializer before it lets the children
        # initialise themselves (ConvModule draws Kaiming weights), and defers only its own
        # type='Pretrained' to the end. Marking the loaded children as initialised keeps them.
        for child in module.modules():
            if child is not module:
                child.is_init = True
        print_log(f'loaded {len(mapped)} tensors of {type(module).__name__} from '
                  f'{self.checkpoint}', logger='current')

    def _get_init_info(self) -> str:
        return f'{self.__class__.__name__}: load from {self.checkpoint}'
