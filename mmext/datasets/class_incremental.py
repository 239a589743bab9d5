"""Class-incremental task sequences over a classification dataset.

A class-incremental benchmark cuts a dataset's classes into T disjoint tasks (e.g. CIFAR-100 in
10 tasks of 10 classes, in an order drawn with seed 1993 as iCaRL did). Task t trains on the
samples of its own classes only; evaluation after task t covers the test samples of every class
seen so far. Labels stay global class ids throughout.

:class:`ClassIncrementalDataset` wraps any mmpretrain dataset, checks the split and hands out
one :class:`TaskView` per (task, subset); ``ClassIncrementalLoop`` trains on them in one stock
Runner. :class:`MergedClassDataset` joins datasets whose class lists share names (the
cross-dataset sequence CIFAR-100 then ImageNet-100).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from mmext.registry import DATASETS

SUBSETS = ('task', 'seen')


def _build(dataset):
    return DATASETS.build(dataset) if isinstance(dataset, dict) else dataset


def _labels(dataset, key: str) -> np.ndarray:
    """The ``key`` field ('gt_label' or e.g. 'source_label') of every sample, as (N,) ints."""
    getter = getattr(dataset, f'get_{key}s', None)  # get_gt_labels, get_source_labels
    if getter is not None:
        return np.asarray(getter(), dtype=np.int64).reshape(-1)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    values = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if key not in info:
            raise KeyError(f'sample {i} of {type(dataset).__name__} has no {key!r} to split '
                           f"tasks by; use split_key='gt_label' or a dataset that sets it")
        values.append(int(np.asarray(info[key]).reshape(-1)[0]))
    return np.asarray(values, dtype=np.int64)


def normalise_class_name(name: str) -> str:
    """Class names as prompts read them: 'aquarium_fish' -> 'aquarium fish'."""
    return ' '.join(str(name).replace('_', ' ').split())


@DATASETS.register_module()
class ClassIncrementalDataset(Dataset):
    """A dataset cut into class-incremental tasks.

    Args:
        dataset: the wrapped classification dataset (config or object); its data infos carry
            ``gt_label`` and its metainfo ``classes``.
        tasks: the classes of every task, as lists of class ids or names (explicit split), or
        classes_per_task: an int (equal tasks) or a list of task sizes, cut from the class order.
        class_order: all class ids (or names) in the order tasks take them; default: natural
            order, or a permutation drawn with ``class_order_seed``.
        class_order_seed: ``np.random.RandomState(seed).permutation(C)``, the iCaRL convention
            (seed 1993 for CIFAR-100 and ImageNet-100).
        class_order_blocks: with ``class_order_seed``, permute within consecutive blocks of
            class ids of these sizes, one after another with the same generator (a merged
            dataset's sources: CIFAR-100's 100 classes, then ImageNet-100's).
        task: which task this dataset object shows (``-1``: the last); the loop uses
            :meth:`view` instead.
        subset: ``'task'`` (the task's classes: training) or ``'seen'`` (every class of tasks
            0..task: evaluation).
        split_key: the data-info field tasks are cut by. ``'gt_label'``; a merged dataset's
            ``'source_label'`` keeps a class that two datasets share in two tasks.

    ``metainfo`` adds ``task_classes`` (lists of gt class ids per task) and, for
    ``subset='seen'``, the ``task`` to the wrapped dataset's.
    """

    def __init__(self, dataset, tasks: Sequence[Sequence[int | str]] | None = None,
                 classes_per_task: int | Sequence[int] | None = None,
                 class_order: Sequence[int | str] | None = None,
                 class_order_seed: int | None = None,
                 class_order_blocks: Sequence[int] | None = None, task: int = -1,
                 subset: str = 'task', split_key: str = 'gt_label'):
        self.dataset = _build(dataset)
        self.split_key = split_key
        self._split_labels = _labels(self.dataset, split_key)
        self._gt_labels = (self._split_labels if split_key == 'gt_label'
                           else _labels(self.dataset, 'gt_label'))
        names = self._split_class_names()
        self.split_tasks = self._make_tasks(names, tasks, classes_per_task, class_order,
                                            class_order_seed, class_order_blocks)
        self.task_classes = [self._gt_classes(split) for split in self.split_tasks]
        self.task, self.subset = self._check_position(task, subset)
        self._indices = self.indices(self.task, self.subset)

    # ------------------------------------------------------------- the split
    def _split_class_names(self) -> list[str]:
        meta = getattr(self.dataset, 'metainfo', {}) or {}
        if self.split_key == 'gt_label':
            names = meta.get('classes')
        else:
            names = meta.get(f'{self.split_key}_classes')
        if names is None:
            count = int(self._split_labels.max()) + 1 if len(self._split_labels) else 0
            names = [str(i) for i in range(count)]
        return [str(n) for n in names]

    @staticmethod
    def _resolve(entry, names: list[str], what: str) -> int:
        if isinstance(entry, str):
            if entry in names:
                return names.index(entry)
            raise ValueError(f'{what} names class {entry!r}, which the dataset does not have; '
                             f'its classes are {names[:10]}{" ..." if len(names) > 10 else ""}')
        index = int(entry)
        if not 0 <= index < len(names):
            raise ValueError(f'{what} names class id {index}, outside the dataset\'s '
                             f'{len(names)} classes (0..{len(names) - 1})')
        return index

    def _make_tasks(self, names, tasks, classes_per_task, class_order, class_order_seed,
                    class_order_blocks=None):
        num = len(names)
        if tasks is not None:
            if classes_per_task is not None or class_order is not None:
                raise ValueError('give either tasks (an explicit split) or classes_per_task '
                                 '(with class_order / class_order_seed), not both')
            split = [[self._resolve(c, names, 'tasks') for c in t] for t in tasks]
        else:
            if class_order is not None and class_order_seed is not None:
                raise ValueError('give class_order or class_order_seed, not both')
            if class_order is not None:
                order = [self._resolve(c, names, 'class_order') for c in class_order]
            elif class_order_seed is not None:
                blocks = [num] if class_order_blocks is None else [int(b) for b in
                                                                   class_order_blocks]
                if sum(blocks) != num or any(b < 1 for b in blocks):
                    raise ValueError(f'class_order_blocks {blocks} must be positive and add '
                                     f'up to the {num} classes')
                rng, order, start = np.random.RandomState(class_order_seed), [], 0
                for size in blocks:
                    order += (start + rng.permutation(size)).tolist()
                    start += size
            else:
                order = list(range(num))
            if len(set(order)) != len(order):
                repeated = sorted({names[c] for c in order if order.count(c) > 1})
                raise ValueError(f'class_order repeats {repeated}: every class belongs to one '
                                 'task')
            if classes_per_task is None:
                raise ValueError('say how to cut the classes into tasks: classes_per_task=N '
                                 '(equal tasks), a list of task sizes, or tasks=[[...], ...]')
            sizes = ([int(classes_per_task)] * (len(order) // int(classes_per_task))
                     if isinstance(classes_per_task, int) else [int(s) for s in classes_per_task])
            if any(s < 1 for s in sizes) or sum(sizes) != len(order):
                raise ValueError(f'task sizes {sizes} must be positive and add up to the '
                                 f'{len(order)} classes of the order')
            starts = np.cumsum([0] + sizes)
            split = [order[a:b] for a, b in zip(starts[:-1], starts[1:])]
        seen: dict[int, int] = {}
        for t, classes in enumerate(split):
            if not classes:
                raise ValueError(f'task {t} has no classes')
            for c in classes:
                if c in seen:
                    raise ValueError(f'tasks overlap: class {names[c]!r} is in task {seen[c]} '
                                     f'and task {t}; class-incremental tasks are disjoint')
                seen[c] = t
        present = set(np.unique(self._split_labels).tolist())
        empty = [names[c] for c in seen if c not in present]
        if empty:
            raise ValueError(f'classes {empty[:5]} of the task split have no sample in '
                             f'{type(self.dataset).__name__}: check the split and the data')
        return split

    def _gt_classes(self, split_classes: list[int]) -> list[int]:
        if self.split_key == 'gt_label':
            return list(split_classes)
        out = []
        for c in split_classes:
            gts = np.unique(self._gt_labels[self._split_labels == c]).tolist()
            out.extend(g for g in gts if g not in out)
        return out

    def _check_position(self, task: int, subset: str) -> tuple[int, str]:
        if subset not in SUBSETS:
            raise ValueError(f"subset must be 'task' (training) or 'seen' (evaluation), not "
                             f'{subset!r}')
        t = task + self.num_tasks if task < 0 else task
        if not 0 <= t < self.num_tasks:
            raise ValueError(f'task {task} does not exist: the sequence has {self.num_tasks} '
                             'tasks')
        return t, subset

    # ---------------------------------------------------------------- access
    @property
    def num_tasks(self) -> int:
        return len(self.split_tasks)

    def seen_classes(self, task: int) -> list[int]:
        """Global (gt) class ids of tasks 0..task, in the order they were learned."""
        out = []
        for classes in self.task_classes[:task + 1]:
            out.extend(c for c in classes if c not in out)
        return out

    def indices(self, task: int, subset: str = 'task') -> np.ndarray:
        """Indices into the wrapped dataset of the samples that (task, subset) shows."""
        task, subset = self._check_position(task, subset)
        tasks = [task] if subset == 'task' else range(task + 1)
        keep = np.concatenate([self.split_tasks[t] for t in tasks])
        return np.flatnonzero(np.isin(self._split_labels, keep))

    def task_of_samples(self, indices: np.ndarray) -> np.ndarray:
        """The task each of the wrapped dataset's samples ``indices`` belongs to."""
        if not hasattr(self, '_sample_tasks'):
            lookup = np.full(int(self._split_labels.max()) + 1, -1, dtype=np.int64)
            for t, classes in enumerate(self.split_tasks):
                lookup[classes] = t
            self._sample_tasks = lookup[self._split_labels]
        return self._sample_tasks[indices]

    def view(self, task: int, subset: str = 'task') -> TaskView:
        """A dataset of the samples of ``task`` (``subset='task'``) or of tasks 0..task."""
        return TaskView(self, task, subset)

    def describe(self) -> str:
        names = self._split_class_names()
        return '; '.join(f'task {t}: ' + ', '.join(names[c] for c in classes)
                         for t, classes in enumerate(self.split_tasks))

    @property
    def metainfo(self) -> dict:
        return self._metainfo(self.task, self.subset)

    def _metainfo(self, task: int, subset: str) -> dict:
        """The wrapped dataset's metainfo with the split; an evaluation subset ('seen') also
        names its task (the metric's row). Training views share one metainfo, so the check of
        a resumed checkpoint's dataset metainfo passes in any task."""
        meta = dict(getattr(self.dataset, 'metainfo', {}) or {})
        meta.update(task_classes=[list(c) for c in self.task_classes], num_tasks=self.num_tasks)
        if subset == 'seen':
            meta.update(task=task, subset=subset)
        return meta

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, idx: int):
        return self._item(int(self._indices[idx]))

    def _item(self, source_index: int):
        data = self.dataset[source_index]
        task = int(self.task_of_samples(np.asarray([source_index]))[0])
        samples = data.get('data_samples') if isinstance(data, dict) else None
        if samples is not None and hasattr(samples, 'set_field'):
            samples.set_field(task, 'task_id', field_type='metainfo')
        return data


class TaskView(Dataset):
    """The samples of one task (or of tasks 0..t) of a :class:`ClassIncrementalDataset`.

    Each packed sample's data sample carries ``task_id``, the task its class belongs to.
    """

    def __init__(self, sequence: ClassIncrementalDataset, task: int, subset: str = 'task'):
        self.sequence = sequence
        self.task, self.subset = sequence._check_position(task, subset)
        self._indices = sequence.indices(self.task, self.subset)

    @property
    def metainfo(self) -> dict:
        return self.sequence._metainfo(self.task, self.subset)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, idx: int):
        return self.sequence._item(int(self._indices[idx]))


@DATASETS.register_module()
class MergedClassDataset(Dataset):
    """Several classification datasets as one, with class names they share merged.

    The merged class list is the first dataset's classes, then every later class whose
    normalised name (:func:`normalise_class_name`, lower case) is new. A sample keeps its
    source's class as ``source_label`` (classes numbered dataset after dataset) and gets the
    merged id as ``gt_label``; ``ClassIncrementalDataset(split_key='source_label')`` then cuts
    tasks dataset after dataset while the classifier sees one name per class. Every source
    keeps its own pipeline (CIFAR arrays, ImageNet files); the packed ``gt_label`` is rewritten
    to the merged id.

    Args:
        datasets: the datasets (configs or objects), in sequence order.
    """

    def __init__(self, datasets: Sequence):
        self.datasets = [_build(d) for d in datasets]
        if not self.datasets:
            raise ValueError('MergedClassDataset needs at least one dataset')
        classes, key_to_id, source_classes, source_to_gt = [], {}, [], []
        for d in self.datasets:
            names = (getattr(d, 'metainfo', {}) or {}).get('classes')
            if not names:
                raise ValueError(f'{type(d).__name__} has no classes in its metainfo; '
                                 'MergedClassDataset merges by class name')
            for name in names:
                key = normalise_class_name(name).lower()
                if key not in key_to_id:
                    key_to_id[key] = len(classes)
                    classes.append(str(name))
                source_classes.append(str(name))
                source_to_gt.append(key_to_id[key])
        self.source_to_gt = np.asarray(source_to_gt, dtype=np.int64)
        self.metainfo = dict(classes=tuple(classes), source_label_classes=tuple(source_classes))
        sizes = [len(d) for d in self.datasets]
        self._starts = np.cumsum([0] + sizes)
        offsets = np.cumsum([0] + [len(d.metainfo['classes']) for d in self.datasets])
        self._source_labels = np.concatenate([
            offsets[k] + np.asarray(d.get_gt_labels(), dtype=np.int64).reshape(-1)
            for k, d in enumerate(self.datasets)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, idx: int) -> tuple[int, int]:
        if not 0 <= idx < len(self):
            raise IndexError(f'index {idx} out of range for {len(self)} samples')
        k = int(np.searchsorted(self._starts, idx, side='right') - 1)
        return k, idx - int(self._starts[k])

    def get_data_info(self, idx: int) -> dict:
        k, i = self._locate(idx)
        info = dict(self.datasets[k].get_data_info(i))
        source = int(self._source_labels[idx])
        info.update(source_label=source, gt_label=int(self.source_to_gt[source]))
        return info

    def get_gt_labels(self) -> np.ndarray:
        return self.source_to_gt[self._source_labels]

    def get_source_labels(self) -> np.ndarray:
        return self._source_labels.copy()

    def __getitem__(self, idx: int):
        k, i = self._locate(idx)
        data = self.datasets[k][i]
        label = int(self.source_to_gt[self._source_labels[idx]])
        samples = data.get('data_samples') if isinstance(data, dict) else None
        if samples is not None and hasattr(samples, 'set_gt_label'):
            samples.set_gt_label(label)
            samples.set_field(int(self._source_labels[idx]), 'source_label',
                              field_type='metainfo')
        return data
