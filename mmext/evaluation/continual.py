"""Continual-learning accuracy: the accuracy matrix, Avg, Last and Forgetting.

With T tasks, ``a[t, j]`` is the top-1 accuracy on the test samples of task j after training
task t, every class seen so far being a candidate; ``A_t`` is the top-1 accuracy on the union of
the test samples of tasks 0..t. Then

    Avg = mean_t A_t,   Last = A_{T-1},
    Forgetting = mean_{j < T-1} max_{l in [j, T-2]} (a[l, j] - a[T-1, j]).
"""
from __future__ import annotations

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub

from mmext.registry import METRICS

#: where the rows of the accuracy matrix live between evaluations (the message hub's runtime
#: info, which mmengine checkpoints save and ``--resume`` restores)
MATRIX_KEY = 'continual_accuracy'


def continual_summary(matrix: np.ndarray, seen_accuracy: np.ndarray) -> dict[str, float]:
    """Avg, Last and Forgetting from a full sequence.

    Args:
        matrix: (T, T) ``a[t, j]`` in percent (entries above the diagonal are ignored).
        seen_accuracy: (T,) ``A_t`` in percent.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    seen_accuracy = np.asarray(seen_accuracy, dtype=np.float64)
    num = len(seen_accuracy)
    if matrix.shape != (num, num):
        raise ValueError(f'accuracy matrix of shape {matrix.shape} for {num} tasks')
    last = num - 1
    drops = [max(matrix[t, j] - matrix[last, j] for t in range(j, last)) for j in range(last)]
    return dict(Avg=float(seen_accuracy.mean()), Last=float(seen_accuracy[last]),
                Forgetting=float(np.mean(drops)) if drops else 0.0)


def _row(scores: np.ndarray, labels: np.ndarray, tasks: np.ndarray,
         seen: list[int], upto: int) -> tuple[list[float], float]:
    """Accuracy per task 0..upto and on their union, candidates restricted to ``seen``."""
    keep = tasks <= upto
    masked = np.full_like(scores, -np.inf)
    masked[:, seen] = scores[:, seen]
    correct = masked.argmax(1) == labels
    per_task = [float(100 * correct[tasks == j].mean()) if (tasks == j).any() else float('nan')
                for j in range(upto + 1)]
    return per_task, float(100 * correct[keep].mean())


@METRICS.register_module()
class ContinualAccuracy(BaseMetric):
    """Row ``t`` of the accuracy matrix after task t, and Avg / Last / Forgetting at the end.

    The dataset (a ``ClassIncrementalDataset`` or one of its views) tells the task split and the
    current task through its metainfo (``task_classes``, ``task``); ``ClassIncrementalLoop``
    evaluates once per task. Rows are kept in the message hub (``MATRIX_KEY``), so a resumed
    run keeps the rows of its finished tasks. Predictions need ``pred_score`` over all classes.

    Args:
        all_prefixes: the model does not change along the sequence (zero-shot CLIP): compute
            every row 0..t from one evaluation of the test samples of tasks 0..t.
        prefix: metric-name prefix.

    Metrics: ``task{j}`` (``a[t, j]``), ``seen`` (``A_t``) and, once rows 0..T-1 exist,
    ``Avg``, ``Last``, ``Forgetting`` and ``matrix`` (the rows as a string), all in percent.
    """

    default_prefix = 'continual'

    def __init__(self, all_prefixes: bool = False, collect_device: str = 'cpu',
                 prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.all_prefixes = all_prefixes

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            score = sample.get('pred_score')
            if score is None:
                raise KeyError('ContinualAccuracy needs pred_score (scores over all classes) '
                               'in the predictions')
            self.results.append(dict(
                score=torch.as_tensor(score).detach().float().cpu().numpy(),
                label=int(torch.as_tensor(sample['gt_label']).reshape(-1)[0]),
                task=int(sample.get('task_id', -1))))

    def _task_split(self) -> tuple[list[list[int]], int]:
        meta = self.dataset_meta or {}
        task_classes = meta.get('task_classes')
        if task_classes is None:
            raise ValueError('ContinualAccuracy needs the task split: evaluate a '
                             'ClassIncrementalDataset (it puts task_classes into the metainfo)')
        task = int(meta.get('task', len(task_classes) - 1))
        return [list(map(int, c)) for c in task_classes], task

    def compute_metrics(self, results: list) -> dict:
        task_classes, current = self._task_split()
        num_tasks = len(task_classes)
        scores = np.stack([r['score'] for r in results])
        labels = np.asarray([r['label'] for r in results])
        class_task = {}
        for t, classes in enumerate(task_classes):
            for c in classes:
                class_task.setdefault(c, t)
        tasks = np.asarray([r['task'] if r['task'] >= 0 else class_task.get(r['label'], -1)
                            for r in results])
        if (tasks < 0).any():
            raise ValueError('some evaluated samples belong to no task of the split '
                             f'(labels {sorted(set(labels[tasks < 0].tolist()))[:5]})')
        hub = MessageHub.get_current_instance()
        stored = dict(hub.get_info(MATRIX_KEY) or {})
        seen: list[int] = []
        metrics = {}
        for t in range(current + 1):
            seen.extend(c for c in task_classes[t] if c not in seen)
            if t < current and not self.all_prefixes:
                continue
            per_task, union = _row(scores, labels, tasks, seen, t)
            stored[t] = dict(row=per_task, seen=union)
        hub.update_info(MATRIX_KEY, stored)
        row = stored[current]
        metrics.update({f'task{j}': acc for j, acc in enumerate(row['row'])})
        metrics['seen'] = row['seen']
        if all(t in stored for t in range(num_tasks)) and current == num_tasks - 1:
            matrix = np.full((num_tasks, num_tasks), np.nan)
            for t in range(num_tasks):
                matrix[t, :t + 1] = stored[t]['row']
            seen_acc = np.asarray([stored[t]['seen'] for t in range(num_tasks)])
            metrics.update(continual_summary(matrix, seen_acc))
            metrics['matrix'] = str([[round(v, 2) for v in stored[t]['row']]
                                     for t in range(num_tasks)])
        elif current == num_tasks - 1:
            metrics['Last'] = row['seen']
        return metrics
