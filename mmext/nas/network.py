"""A fixed network built from a genotype: the backbone a search's result is retrained as.

``DartsNetwork`` is registered in mmext's MODELS, so mmpretrain (``ImageClassifier`` with a
``GlobalAveragePooling`` neck) and mmdet (any detector, ``out_indices`` picking the stages)
use it as ``backbone=dict(type='mmext.DartsNetwork', genotype='Genotype(...)', ...)``.
"""
from __future__ import annotations

import torch
from mmengine.model import BaseModule
from torch import nn

from mmext.registry import MODELS

from .genotype import Genotype, load_genotype
from .operations import FactorizedReduce, ReLUConvBN, build_operation
from .search_space import reduction_layers


class GenotypeCell(nn.Module):
    """One cell of a genotype: two operations into each intermediate node.

    forward(s0, s1) -> (B, len(concat) * C, H', W').
    """

    def __init__(self, genotype: Genotype, prev_prev_channels: int, prev_channels: int,
                 channels: int, reduction: bool, reduction_prev: bool, binary: bool = False,
                 real_depthwise_input: bool = False):
        super().__init__()
        self.reduction = reduction
        edges, concat = ((genotype.reduce, genotype.reduce_concat) if reduction else
                         (genotype.normal, genotype.normal_concat))
        self.preprocess0 = (FactorizedReduce(prev_prev_channels, channels, binary)
                            if reduction_prev else
                            ReLUConvBN(prev_prev_channels, channels, 1, 1, 0, binary))
        self.preprocess1 = ReLUConvBN(prev_channels, channels, 1, 1, 0, binary)
        self.sources = [source for _, source in edges]
        self.concat = list(concat)
        self.ops = nn.ModuleList(
            build_operation(name, channels, 2 if reduction and source < 2 else 1, binary,
                            real_depthwise_input=real_depthwise_input)
            for name, source in edges)

    @property
    def out_channels_factor(self) -> int:
        return len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(0, len(self.ops), 2):
            states.append(self.ops[i](states[self.sources[i]])
                          + self.ops[i + 1](states[self.sources[i + 1]]))
        return torch.cat([states[i] for i in self.concat], dim=1)


@MODELS.register_module()
class DartsNetwork(BaseModule):
    """A stack of :class:`GenotypeCell` (reductions at 1/3 and 2/3 of the depth).

    forward(x (B, in_channels, H, W)) -> tuple of the outputs of the cells in ``out_indices``,
    each (B, C_i, H_i, W_i).

    Args:
        genotype: a DARTS genotype string, a :class:`Genotype`, or a file holding one
            (``load_genotype``: the ``genotype.py`` a search writes).
        channels: channels of the first cells (doubled at each reduction).
        num_cells: cells in total.
        in_channels: input image channels.
        binary: True: 1-bit convolutions inside the cells (stem stays real-valued);
            'activations': 1-bit inputs, real weights (step 1 of two-step retraining); False.
        stem: 'cifar' (one 3 x 3 conv, full resolution, module ``stem``) or 'imagenet'
            (DARTS's two stems: ``stem0``, two stride-2 convs, gives the first cell's first
            input at 1/4 resolution; ``stem1``, one more, its second at 1/8).
        stem_multiplier: the CIFAR stem's output is ``stem_multiplier * channels``.
        stem_stride: stride of the CIFAR stem (2 halves the input before the first cell).
        out_indices: cells whose outputs are returned (default: the last one).
        real_depthwise_input: the depthwise convolutions of the separable and dilated
            operations see real-valued inputs (1-bit weights when ``binary=True``), as in the
            released ImageNet retraining; False (default): every convolution in the cells
            takes 1-bit inputs when ``binary`` is set.
    """

    def __init__(self, genotype: str | Genotype, channels: int = 36, num_cells: int = 20,
                 in_channels: int = 3, binary: bool | str = True, stem: str = 'cifar',
                 stem_multiplier: int = 3, stem_stride: int = 1, out_indices: tuple[int, ...] = (-1, ),
                 real_depthwise_input: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        self.genotype = load_genotype(genotype)
        self.binary = binary
        if not isinstance(real_depthwise_input, bool):
            raise TypeError(f'real_depthwise_input must be True or False, got '
                            f'{real_depthwise_input!r}')
        self.real_depthwise_input = real_depthwise_input
        self.num_cells = num_cells
        if stem == 'cifar':
            stem_channels = stem_multiplier * channels
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, stem_channels, 3, stem_stride, 1, bias=False),
                nn.BatchNorm2d(stem_channels))
            prev_prev = prev = stem_channels
            reduction_prev = False
        elif stem == 'imagenet':  # DARTS's two ImageNet stems: the cells' first two inputs
            self.stem0 = nn.Sequential(  # (B, C, H / 4, W / 4)
                nn.Conv2d(in_channels, channels // 2, 3, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2), nn.ReLU(),
                nn.Conv2d(channels // 2, channels, 3, 2, 1, bias=False),
                nn.BatchNorm2d(channels))
            self.stem1 = nn.Sequential(  # (B, C, H / 8, W / 8)
                nn.ReLU(), nn.Conv2d(channels, channels, 3, 2, 1, bias=False),
                nn.BatchNorm2d(channels))
            prev_prev, prev = channels, channels
            reduction_prev = True
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        self.stem_kind = stem
        for i in out_indices:
            if not -num_cells <= i < num_cells:
                raise ValueError(f'out_indices {out_indices} must index the {num_cells} cells')
        self.cells = nn.ModuleList()
        self.out_channels = []
        c = channels
        for i in range(num_cells):
            reduction = i in reduction_layers(num_cells)
            c = c * 2 if reduction else c
            cell = GenotypeCell(self.genotype, prev_prev, prev, c, reduction, reduction_prev,
                                binary, real_depthwise_input)
            self.cells.append(cell)
            reduction_prev = reduction
            prev_prev, prev = prev, cell.out_channels_factor * c
            self.out_channels.append(prev)
        self.out_indices = tuple(i % num_cells for i in out_indices)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.stem_kind == 'imagenet':
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        else:
            s0 = s1 = self.stem(x)
        outs = []
        for i, cell in enumerate(self.cells[:max(self.out_indices) + 1]):  # none after the last
            s0, s1 = s1, cell(s0, s1)
            if i in self.out_indices:
                outs.append(s1)
        return tuple(outs)
