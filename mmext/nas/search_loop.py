"""The search loop: weights and architecture trained on separate data, in one runner.

``train_cfg = dict(type='mmext.NASSearchLoop', max_epochs=..., arch_dataloader=dict(...))``
replaces the stock epoch loop. Each iteration hands the model
``dict(train=<batch of train_dataloader>, arch=<batch of arch_dataloader>)``; the model's
``train_step`` decides what each batch updates (DARTS: weights on ``train``, architecture on
``arch``). The architecture loader cycles when it is shorter. Hooks see the ``train`` batch,
so logging, checkpointing and resuming are the runner's.

Under DDP the model wrapper must hand that dict to the model's own ``train_step``.
mmengine's ``MMDistributedDataParallel`` would instead run the model's 'loss' forward on it,
so the loop refuses it and names the fix: a wrapper such as
``mmext.DCPNASDistributedDataParallel``.
"""
from __future__ import annotations

from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from torch import nn
from torch.utils.data import DataLoader

from mmext.registry import LOOPS


def check_search_wrapper(model: nn.Module) -> None:
    """Raise TypeError if ``model`` is a model wrapper whose ``train_step`` would not pass
    ``dict(train=..., arch=...)`` to the wrapped model's ``train_step``: torch's plain DDP
    has no ``train_step``, and ``MMDistributedDataParallel``'s runs the 'loss' forward."""
    if not is_model_wrapper(model):
        return
    train_step = getattr(type(model), 'train_step', None)
    if train_step is None or train_step is MMDistributedDataParallel.train_step:
        raise TypeError(
            f"NASSearchLoop needs the model's own train_step, but {type(model).__name__} "
            f"{'has none' if train_step is None else 'runs the loss forward instead'}. Set "
            f"model_wrapper_cfg to a wrapper that calls it; for DCP-NAS "
            f"model_wrapper_cfg=dict(type='mmext.DCPNASDistributedDataParallel')")


@LOOPS.register_module()
class NASSearchLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` with a second dataloader for the architecture parameters.

    Args:
        arch_dataloader: a dataloader or its config (built like ``train_dataloader``); use a
            held-out part of the training set, never the test set.
        Others: as ``EpochBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader: DataLoader | dict, arch_dataloader: DataLoader | dict,
                 max_epochs: int, val_begin: int = 1, val_interval: int = 1,
                 dynamic_intervals=None):
        check_search_wrapper(runner.model)
        super().__init__(runner, dataloader, max_epochs, val_begin, val_interval,
                         dynamic_intervals)
        if isinstance(arch_dataloader, dict):
            diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
            arch_dataloader = runner.build_dataloader(arch_dataloader, seed=runner.seed,
                                                      diff_rank_seed=diff_rank_seed)
        self.arch_dataloader = arch_dataloader
        self._arch_batches = None

    def next_arch_batch(self):
        """The next batch of the architecture loader, restarting it when exhausted."""
        if self._arch_batches is not None:
            batch = next(self._arch_batches, None)
            if batch is not None:
                return batch
        self._arch_batches = iter(self.arch_dataloader)
        return next(self._arch_batches)

    def run_iter(self, idx, data_batch) -> None:
        self.runner.call_hook('before_train_iter', batch_idx=idx, data_batch=data_batch)
        batches = dict(train=data_batch, arch=self.next_arch_batch())
        outputs = self.runner.model.train_step(batches, optim_wrapper=self.runner.optim_wrapper)
        self.runner.call_hook('after_train_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)
        self._iter += 1
