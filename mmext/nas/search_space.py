"""The DARTS search space: mixed edges, search cells, the supernet and its architecture
parameters.

A supernet holds operation weights only; the architecture parameters live apart in
:class:`ArchParameters` and are passed to ``forward``. So a real-valued parent and a 1-bit
child supernet can share one set of architecture parameters (DCP-NAS), and a single supernet
works for a plain DARTS search too.
"""
from __future__ import annotations

import torch
from torch import nn

from mmext.registry import MODELS

from .genotype import derive_genotype
from .operations import PRIMITIVES, FactorizedReduce, ReLUConvBN, build_operation, weight_norm


def num_edges(steps: int) -> int:
    """Edges of a cell with ``steps`` intermediate nodes: 2 + 3 + ... (14 for 4 steps)."""
    return sum(2 + i for i in range(steps))


class MixedOp(nn.Module):
    """``sum_m w_m o_m(x)`` over the candidate operations of one edge.

    forward(x (B, C, H, W), weights (M,)) -> (B, C, H / stride, W / stride). The 'none'
    operation contributes zeros and is not run.
    """

    def __init__(self, channels: int, stride: int, binary: bool = False,
                 primitives: tuple[str, ...] = PRIMITIVES):
        super().__init__()
        self.primitives = tuple(primitives)
        # pools get a BatchNorm without affine, as in DARTS, so their scale matches the convs'
        self.ops = nn.ModuleList(
            nn.Sequential(op, nn.BatchNorm2d(channels, affine=False)) if 'pool' in name else op
            for name in self.primitives
            for op in [build_operation(name, channels, stride, binary, affine=False)])

        self.recording = False
        self._outputs: list[torch.Tensor | None] = []
        self._grad: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out, outputs = None, []
        for name, op, w in zip(self.primitives, self.ops, weights):
            y = None if name == 'none' else op(x)
            if self.recording:
                outputs.append(None if y is None else y.detach())
            if y is not None:
                out = w * y if out is None else out + w * y
        if self.recording and out.requires_grad:
            self._outputs = outputs
            out.register_hook(self._keep_grad)
        return out

    def _keep_grad(self, grad: torch.Tensor) -> None:
        self._grad = grad

    def per_sample_weight_grads(self) -> torch.Tensor:
        """After a recorded forward and backward: each sample's share of d loss / d weights,
        (B, M). The edge output is linear in the weights, so sample b's share for operation m is
        ``<d loss / d out_b, o_m(x_b)>``; the shares sum over b to the batch gradient."""
        if self._grad is None:
            raise RuntimeError('per_sample_weight_grads needs a forward with recording on, then '
                               'a backward')
        grad = self._grad.flatten(1)
        shares = [torch.zeros(grad.shape[0], device=grad.device) if o is None else
                  (grad * o.flatten(1)).sum(1) for o in self._outputs]
        self._outputs, self._grad = [], None
        return torch.stack(shares, dim=1)


class SearchCell(nn.Module):
    """A DARTS cell whose every edge is a :class:`MixedOp`.

    forward(s0, s1, weights (E, M)) -> (B, multiplier * C, H', W'): the concatenation of the
    last ``multiplier`` intermediate nodes. ``s0``, ``s1`` are the outputs of the two previous
    cells (``s0`` at twice the resolution when the previous cell reduced).
    """

    def __init__(self, steps: int, multiplier: int, prev_prev_channels: int,
                 prev_channels: int, channels: int, reduction: bool, reduction_prev: bool,
                 binary: bool = False, primitives: tuple[str, ...] = PRIMITIVES):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        self.preprocess0 = (FactorizedReduce(prev_prev_channels, channels, binary, affine=False)
                            if reduction_prev else
                            ReLUConvBN(prev_prev_channels, channels, 1, 1, 0, binary, False))
        self.preprocess1 = ReLUConvBN(prev_channels, channels, 1, 1, 0, binary, False)
        self.edges = nn.ModuleList(
            MixedOp(channels, 2 if reduction and j < 2 else 1, binary, primitives)
            for i in range(steps) for j in range(2 + i))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            node = sum(self.edges[offset + j](h, weights[offset + j])
                       for j, h in enumerate(states))
            offset += len(states)
            states.append(node)
        return torch.cat(states[-self.multiplier:], dim=1)


@MODELS.register_module()
class DartsSupernet(nn.Module):
    """The DARTS supernet: float stem, ``num_cells`` search cells (reductions at 1/3 and 2/3 of
    the depth), global pooling and a float linear classifier.

    forward(x (B, in_channels, H, W), weights) -> logits (B, num_classes), where ``weights`` is
    ``dict(normal=(E, M), reduce=(E, M))`` of operation weights (see
    :meth:`ArchParameters.op_weights`).

    Args:
        channels: channels of the first cells (doubled at each reduction).
        num_cells: cells in total.
        binary: 1-bit convolutions in every cell (stem and classifier stay real-valued).
        steps / multiplier: intermediate nodes per cell / how many are concatenated.
        stem_multiplier: stem output = ``stem_multiplier * channels``.
        stem_stride: 2 halves the input before the first cell (cheaper search on CPU).
    """

    def __init__(self, channels: int = 16, num_classes: int = 10, num_cells: int = 8,
                 in_channels: int = 3, binary: bool = False, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, stem_stride: int = 1,
                 primitives: tuple[str, ...] = PRIMITIVES):
        super().__init__()
        self.binary = binary
        self.steps = steps
        self.primitives = tuple(primitives)
        stem = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(stem))
        prev_prev, prev, c = stem, stem, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(num_cells):
            reduction = i in reduction_layers(num_cells)
            c = c * 2 if reduction else c
            self.cells.append(SearchCell(steps, multiplier, prev_prev, prev, c, reduction,
                                         reduction_prev, binary, self.primitives))
            reduction_prev = reduction
            prev_prev, prev = prev, multiplier * c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w = weights['reduce' if cell.reduction else 'normal']
            s0, s1 = s1, cell(s0, s1, w)
        return self.classifier(self.pool(s1).flatten(1))

    def record_edges(self, on: bool = True) -> None:
        """Keep what :meth:`per_sample_arch_grads` needs during the next forward/backward."""
        for module in self.modules():
            if isinstance(module, MixedOp):
                module.recording = on

    def per_sample_arch_grads(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each sample's share of d loss / d alpha after a recorded forward and backward:
        ``dict(normal=(B, E, M), reduce=(B, E, M))``, summed over the cells of each type and
        taken through the softmax of each edge (``weights`` are the softmax outputs used in
        the forward). Summed over the batch they equal the gradient of the batch loss; with a
        mean loss, ``B *`` a share is the sample's own gradient (BatchNorm's coupling aside).
        """
        grads = {}
        for cell in self.cells:
            key = 'reduce' if cell.reduction else 'normal'
            w = torch.stack([edge.per_sample_weight_grads() for edge in cell.edges], dim=1)
            grads[key] = grads.get(key, 0) + w
        out = {}
        for key, g_w in grads.items():
            p = weights[key].detach()  # (E, M)
            out[key] = p * (g_w - (g_w * p).sum(-1, keepdim=True))  # softmax Jacobian
        return out

    def edge_weight_norms(self) -> dict[str, torch.Tensor]:
        """``R(w_m)`` per edge and operation, summed over the cells of each type: (E, M)."""
        norms = {}
        for cell in self.cells:
            key = 'reduce' if cell.reduction else 'normal'
            table = torch.tensor([[weight_norm(op) for op in edge.ops] for edge in cell.edges])
            norms[key] = norms.get(key, 0) + table
        return norms


def reduction_layers(num_cells: int) -> tuple[int, int]:
    """Indices of the reduction cells (DARTS: at 1/3 and 2/3 of the depth)."""
    return num_cells // 3, 2 * num_cells // 3


@MODELS.register_module()
class ArchParameters(nn.Module):
    """The architecture parameters alpha of a DARTS search: one (E, M) matrix per cell type.

    Args:
        steps: intermediate nodes per cell (E = :func:`num_edges` (steps)).
        primitives: the candidate operations (M of them).
        init_std: alpha starts as ``init_std * randn`` (DARTS: 1e-3).
    """

    def __init__(self, steps: int = 4, primitives: tuple[str, ...] = PRIMITIVES,
                 init_std: float = 1e-3):
        super().__init__()
        self.steps = steps
        self.primitives = tuple(primitives)
        shape = (num_edges(steps), len(self.primitives))
        self.normal = nn.Parameter(init_std * torch.randn(shape))
        self.reduce = nn.Parameter(init_std * torch.randn(shape))

    def alphas(self) -> dict[str, torch.Tensor]:
        return {'normal': self.normal, 'reduce': self.reduce}

    def op_weights(self, alphas: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Softmax over operations of each edge: ``dict(normal=(E, M), reduce=(E, M))``."""
        alphas = self.alphas() if alphas is None else alphas
        return {k: a.softmax(dim=-1) for k, a in alphas.items()}

    def genotype(self):
        """The DARTS discretisation of the current alphas (:func:`derive_genotype`)."""
        w = self.op_weights()
        return derive_genotype(w['normal'], w['reduce'], self.steps, self.primitives)
