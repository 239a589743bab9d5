"""``mmext.OpenVocabIoUMetric``: mIoU over seen classes, over unseen classes, and their harmonic
mean hIoU, as an mmseg evaluator."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmengine.logging import print_log
from mmseg.evaluation.metrics import IoUMetric

from mmext.registry import METRICS


def harmonic_iou(miou_seen: float, miou_unseen: float) -> float:
    """hIoU = 2 S U / (S + U); 0 when both are 0."""
    total = miou_seen + miou_unseen
    return 0.0 if total == 0 else 2 * miou_seen * miou_unseen / total


def class_indices(names: Sequence[str | int], classes: Sequence[str], what: str) -> list[int]:
    """Positions of ``names`` (class names or indices) in ``classes``; unknown names are an
    error that lists the known ones."""
    indices = []
    for name in names:
        if isinstance(name, int):
            if not 0 <= name < len(classes):
                raise ValueError(f'{what}: class index {name} is outside 0..{len(classes) - 1}')
            indices.append(name)
        elif name in classes:
            indices.append(list(classes).index(name))
        else:
            raise ValueError(f'{what}: unknown class {name!r}; the classes are {list(classes)}')
    return indices


def split_classes(names: Sequence[str], seen: Sequence | None, unseen: Sequence | None
                  ) -> tuple[list[int], list[int]]:
    """Indices of the seen and the unseen classes; exactly one list may be left out."""
    if seen is None and unseen is None:
        raise ValueError('give seen_classes or unseen_classes (the other is the rest)')
    seen_ids = class_indices(seen, names, 'seen_classes') if seen is not None else None
    unseen_ids = class_indices(unseen, names, 'unseen_classes') if unseen is not None else None
    if seen_ids is None:
        seen_ids = [i for i in range(len(names)) if i not in unseen_ids]
    if unseen_ids is None:
        unseen_ids = [i for i in range(len(names)) if i not in seen_ids]
    overlap = sorted(set(seen_ids) & set(unseen_ids))
    if overlap:
        raise ValueError(f'classes {[names[i] for i in overlap]} are both seen and unseen')
    return seen_ids, unseen_ids


@METRICS.register_module()
class OpenVocabIoUMetric(IoUMetric):
    """IoU of open-vocabulary (zero-shot) segmentation.

    All three numbers come from one confusion matrix over every evaluated class (prediction
    among seen + unseen names): ``mIoU_seen`` is the mean IoU of ``seen_classes``,
    ``mIoU_unseen`` that of ``unseen_classes`` and ``hIoU`` their harmonic mean. Classes
    absent from both the labels and the predictions (union 0) are left out of the means, as in
    mmseg. ``mIoU`` and ``aAcc`` of all classes are kept.

    The metric is the same in the inductive setting (unseen names and pixels unavailable in
    training) and the transductive one (names known, pixels unlabelled); ``setting`` is only
    recorded beside the numbers so a log says which protocol produced them.

    Args:
        seen_classes / unseen_classes: names (or indices) of the classes trained with labels /
            of the zero-shot classes; give one of them, the other is the rest.
        setting: ``'inductive'`` or ``'transductive'``.
    """

    def __init__(self, seen_classes: Sequence[str | int] | None = None,
                 unseen_classes: Sequence[str | int] | None = None,
                 setting: str = 'inductive', **kwargs):
        if setting not in ('inductive', 'transductive'):
            raise ValueError(f"setting must be 'inductive' or 'transductive', not {setting!r}")
        kwargs.setdefault('iou_metrics', ['mIoU'])
        super().__init__(**kwargs)
        if seen_classes is None and unseen_classes is None:
            raise ValueError('give seen_classes or unseen_classes (the other is the rest)')
        self.seen_classes = None if seen_classes is None else list(seen_classes)
        self.unseen_classes = None if unseen_classes is None else list(unseen_classes)
        self.setting = setting

    def split(self) -> tuple[list[int], list[int]]:
        return split_classes(self.dataset_meta['classes'], self.seen_classes,
                             self.unseen_classes)

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        seen, unseen = self.split()
        intersect = sum(r[0] for r in results).numpy().astype(np.float64)
        union = sum(r[1] for r in results).numpy().astype(np.float64)
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = intersect / union  # nan where union is 0
        miou_seen = float(np.nanmean(iou[seen])) * 100 if seen else float('nan')
        miou_unseen = float(np.nanmean(iou[unseen])) * 100 if unseen else float('nan')
        metrics.update(mIoU_seen=round(miou_seen, 2), mIoU_unseen=round(miou_unseen, 2),
                       hIoU=round(harmonic_iou(miou_seen, miou_unseen), 2))
        print_log(f'open-vocabulary IoU ({self.setting}): seen {miou_seen:.2f}, '
                  f'unseen {miou_unseen:.2f}, hIoU {metrics["hIoU"]:.2f}', logger='current')
        return metrics
