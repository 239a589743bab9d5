"""The search loop: weights and architecture trained on separate data, in one runner.

``train_cfg = dict(type='mmext.NASSearchLoop', max_epochs=..., arch_dataloader=dict(...))``
replaces the stock epoch loop. Each iteration hands the model
``dict(train=<batch of train_dataloader>, arch=<batch of arch_dataloader>)``; the model's
``train_step`` decides what each batch updates (DARTS: weights on ``train``, architecture on
``arch``). The architecture loader cycles when it is shorter. Hooks see the ``train`` batch,
so logging, checkpointing and resuming are the runner's.
"""
from __future__ import annotations

from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from mmext.registry import LOOPS


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
