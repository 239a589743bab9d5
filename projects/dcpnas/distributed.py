"""The DCP-NAS search under DistributedDataParallel (``tools/train.py --launcher pytorch``).

mmengine's ``MMDistributedDataParallel.train_step`` runs one forward in 'loss' mode and one
backward, and DDP's reducer averages the gradients during that backward. A DCP-NAS iteration
does not fit that pattern. It makes four updates (parent weights, alpha from the parent, child
weights, alpha from the child), and it takes the architecture gradients with
``torch.autograd.grad`` and a Fisher product rather than a backward into ``.grad``. So
:class:`DCPNASDistributedDataParallel` passes the whole iteration to ``DCPNAS.train_step``,
together with an ``average`` function (:class:`ProcessGroupAverage`). The model averages
each batch mean at the point where a later step needs its value over all processes:

- the parent's and the child's weight gradients, after the backward and before the step;
- the parent's architecture gradient ``g_P`` (the tangent direction);
- the child's ``u = dG/dalpha``, before the discrepancy ``D(u)`` and ``dD/du`` are taken;
- the Fisher product ``mean_b g_b (g_b . dD/du)``, so that F averages over the samples of
  every process.

Every process then makes the same updates, so weights, alpha and psi stay identical across
processes. When each process has a batch of the same size (mmengine's ``DefaultSampler``
pads the data so that they do) and BatchNorm does not couple samples (eval-mode statistics),
an iteration equals one process's iteration on the union of the batches. In train mode, each
process normalises with its own batch's statistics, as under plain DDP without SyncBN. DDP's
reducer is built but stays idle, because the wrapper never calls ``DDP.forward``; DDP is still
what broadcasts rank 0's initial state to the other processes.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from mmengine.dist import all_reduce_params
from mmengine.model import MMDistributedDataParallel

from mmext.registry import MODEL_WRAPPERS


class ProcessGroupAverage:
    """``average(tensors)``: replace each tensor, in place, by its mean over the processes of
    ``group`` (one coalesced all-reduce per dtype; nothing happens in a single process).

    Every process must call it with the same number of tensors, with the same shapes, in the
    same order.
    """

    def __init__(self, group=None):
        self.group = group

    def __call__(self, tensors: Sequence[torch.Tensor]) -> None:
        tensors = list(tensors)
        if tensors:
            all_reduce_params(tensors, coalesce=True, op='mean', group=self.group)


@MODEL_WRAPPERS.register_module()
class DCPNASDistributedDataParallel(MMDistributedDataParallel):
    """DDP for :class:`mmext.DCPNAS`. ``train_step`` runs the model's own search iteration
    with gradients averaged over the processes. ``val_step`` and ``test_step`` are
    ``MMDistributedDataParallel``'s.

    In the search config::

        model_wrapper_cfg = dict(type='mmext.DCPNASDistributedDataParallel')

    Args:
        module: a model whose ``train_step(data, optim_wrapper, average=...)`` accepts an
            averaging function (``mmext.DCPNAS``).
        **kwargs: as :class:`mmengine.model.MMDistributedDataParallel` (``device_ids``,
            ``broadcast_buffers``, ...).
    """

    def __init__(self, module: torch.nn.Module, **kwargs):
        train_step = getattr(module, 'train_step', None)
        if train_step is None or 'average' not in inspect.signature(train_step).parameters:
            raise TypeError(f'DCPNASDistributedDataParallel wraps a model whose train_step '
                            f'takes `average` (mmext.DCPNAS); {type(module).__name__} does not. '
                            f'Use MMDistributedDataParallel for other models')
        super().__init__(module=module, **kwargs)
        self.average = ProcessGroupAverage(self.process_group)

    def train_step(self, data: dict, optim_wrapper) -> dict[str, torch.Tensor]:
        """One search iteration of the wrapped model on this process's
        ``dict(train=batch, arch=batch)``, its gradients averaged over the processes."""
        return self.module.train_step(data, optim_wrapper, average=self.average)
