"""One training phase per task of a class-incremental sequence, in one stock Runner."""
from __future__ import annotations

import copy
import math

from mmengine.dataset import DefaultSampler
from mmengine.logging import MessageHub, print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from mmext.datasets.class_incremental import ClassIncrementalDataset
from mmext.evaluation.continual import MATRIX_KEY
from mmext.registry import DATASETS, LOOPS


@LOOPS.register_module()
class ClassIncrementalLoop(EpochBasedTrainLoop):
    """Train task after task on a ``ClassIncrementalDataset``; evaluate after every task.

    Task t trains ``epochs_per_task`` epochs on the samples of its own classes (no memory of
    earlier tasks). Before it starts, the model learns which classes are seen so far
    (``model.set_seen_classes(ids)``; and ``model.set_class_names(names)`` when its config gave
    none); after it, the validation loop evaluates the test samples of tasks 0..t, and the
    evaluator's ``dataset_meta`` names the task (``ContinualAccuracy`` fills row t of the
    accuracy matrix).

    Epochs count across the sequence (task t holds epochs ``t * E .. (t + 1) * E - 1``), so a
    run resumed with ``--resume`` from any checkpoint continues in the right task; a task whose
    evaluation the checkpoint preceded is evaluated first. Schedulers see one continuous epoch
    count: restart the learning rate per task with ``CosineRestartLR(periods=[E] * T)``.

    Args:
        runner: the Runner.
        dataloader: the train dataloader config whose dataset is a ``ClassIncrementalDataset``.
        epochs_per_task: E.
        evaluate_tasks: evaluate after every task (needs a ``val_dataloader`` over the same
            sequence, ``subset='seen'``).
    """

    def __init__(self, runner, dataloader: dict, epochs_per_task: int,
                 evaluate_tasks: bool = True):
        if not isinstance(dataloader, dict):
            raise TypeError('ClassIncrementalLoop builds one dataloader per task: give '
                            'train_dataloader as a config dict')
        if int(epochs_per_task) < 1:
            raise ValueError(f'epochs_per_task must be at least 1, got {epochs_per_task}; '
                             'evaluate a model without training by tools/test.py with '
                             'ContinualAccuracy(all_prefixes=True)')
        self._loader_cfg = copy.deepcopy(dataloader)
        dataset = self._loader_cfg.pop('dataset')
        self.sequence = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        if not isinstance(self.sequence, ClassIncrementalDataset):
            raise TypeError('ClassIncrementalLoop needs train_dataloader.dataset to be a '
                            "ClassIncrementalDataset (type='mmext.ClassIncrementalDataset'), "
                            f'got {type(self.sequence).__name__}')
        self._building_runner = runner  # BaseLoop keeps it only after super().__init__
        self.epochs_per_task = int(epochs_per_task)
        self.evaluate_tasks = evaluate_tasks
        super().__init__(runner, self._task_loader(0),
                         max_epochs=self.sequence.num_tasks * self.epochs_per_task,
                         val_begin=10**9, val_interval=10**9)
        lengths = [self._num_batches(t) for t in range(self.sequence.num_tasks)]
        self._max_iters = sum(lengths) * self.epochs_per_task
        self._active_task: int | None = None
        print_log(f'class-incremental sequence of {self.sequence.num_tasks} tasks, '
                  f'{self.epochs_per_task} epochs each: {self.sequence.describe()}',
                  logger='current')

    # ----------------------------------------------------------------- parts
    def _task_loader(self, task: int) -> DataLoader:
        cfg = dict(copy.deepcopy(self._loader_cfg), dataset=self.sequence.view(task, 'task'))
        runner = self._building_runner
        return runner.build_dataloader(
            cfg, seed=runner.seed,
            diff_rank_seed=(runner.cfg.get('randomness') or {}).get('diff_rank_seed', False))

    def _num_batches(self, task: int) -> int:
        size = len(self.sequence.indices(task, 'task'))
        batch = int(self._loader_cfg.get('batch_size', 1))
        if self._loader_cfg.get('drop_last', False):
            return size // batch
        return math.ceil(size / batch)

    @property
    def model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _set_model_classes(self, task: int) -> None:
        model = self.model
        if not hasattr(model, 'set_seen_classes'):
            raise TypeError(f'{type(model).__name__} cannot learn class-incrementally: it needs '
                            'set_seen_classes(class_ids) (see mmext.clip.CLIPClassifier)')
        if getattr(model, 'class_names', None) is None and hasattr(model, 'set_class_names'):
            names = self.sequence.metainfo.get('classes')
            if names is None:
                raise ValueError('neither the model config nor the dataset metainfo gives the '
                                 'class names')
            model.set_class_names(list(names))
        model.set_seen_classes(self.sequence.seen_classes(task))

    def _check_val_sequence(self) -> ClassIncrementalDataset:
        dataset = self.runner.val_loop.dataloader.dataset
        sequence = getattr(dataset, 'sequence', dataset)
        if not isinstance(sequence, ClassIncrementalDataset):
            raise TypeError('evaluating a class-incremental run needs val_dataloader.dataset '
                            "to be a ClassIncrementalDataset with subset='seen' as well")
        if sequence.task_classes != self.sequence.task_classes:
            raise ValueError('the train and val sequences cut the classes differently '
                             f'(train: {self.sequence.task_classes}, val: '
                             f'{sequence.task_classes}); give both the same class order, '
                             'seed and task sizes')
        return sequence

    def evaluate_task(self, task: int) -> dict:
        """Evaluate the test samples of tasks 0..task with the classes seen by then."""
        val_loop = self.runner.val_loop
        sequence = self._check_val_sequence()
        view = sequence.view(task, 'seen')
        old = val_loop.dataloader
        val_loop.dataloader = DataLoader(
            view, batch_size=old.batch_size, sampler=DefaultSampler(view, shuffle=False),
            num_workers=old.num_workers, collate_fn=old.collate_fn, pin_memory=old.pin_memory)
        val_loop.evaluator.dataset_meta = view.metainfo
        self._set_model_classes(task)
        return val_loop.run()

    def _enter_task(self, task: int) -> None:
        if self._active_task == task:
            return
        if task > 0 and self.evaluate_tasks and self.runner.val_loop is not None:
            rows = MessageHub.get_current_instance().get_info(MATRIX_KEY) or {}
            if task - 1 not in rows:  # resumed from the checkpoint saved before that evaluation
                self.evaluate_task(task - 1)
        self.dataloader = self._task_loader(task)
        self._set_model_classes(task)
        self._active_task = task
        print_log(f'task {task + 1}/{self.sequence.num_tasks}: '
                  f'{len(self.dataloader.dataset)} training samples, classes '
                  f'{self.sequence.task_classes[task]}', logger='current')

    # ------------------------------------------------------------------ run
    def run(self):
        self.runner.call_hook('before_train')
        while self._epoch < self._max_epochs and not self.stop_training:
            task = self._epoch // self.epochs_per_task
            self._enter_task(task)
            self.run_epoch()
            if self._epoch % self.epochs_per_task == 0 and self.evaluate_tasks \
                    and self.runner.val_loop is not None:
                self.evaluate_task(task)
        self.runner.call_hook('after_train')
        return self.runner.model
