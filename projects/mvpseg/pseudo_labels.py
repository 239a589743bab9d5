"""MVP-SEG+ pseudo-labels: which pixels may get one, and which label they get.

One rule, used by the transductive head (on the fly, in training) and by
``tools/data/mvpseg_pseudo_labels.py`` (written to annotation files for a second segmentor):
a pixel is pseudo-labelled only when its ground truth is an unseen class (so it carries no
training label), never when it is void (boundaries, crop padding: ``ignore_index``) or seen,
and only with an unseen class predicted with probability above a threshold.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def unseen_pixel_mask(labels: Tensor, unseen: Sequence[int], ignore_index: int = 255) -> Tensor:
    """Bool mask (shape of ``labels``) of the pixels whose ground truth is an unseen class: the
    only pixels that may be pseudo-labelled. Void pixels (``ignore_index``) and seen ones are
    never in it."""
    unseen_ids = torch.as_tensor(list(unseen), dtype=torch.long, device=labels.device)
    labels = labels.long()
    return torch.isin(labels, unseen_ids) & (labels != ignore_index)


def select_pseudo_labels(probs: Tensor, candidates: Tensor, unseen: Sequence[int],
                         threshold: float) -> tuple[Tensor, Tensor]:
    """Pseudo-labels from class probabilities.

    Args:
        probs: (B, C, H, W) class probabilities.
        candidates: (B, H, W) bool, the pixels that may be labelled (:func:`unseen_pixel_mask`).
        unseen: the unseen class indices.
        threshold: a pixel is kept when its most probable class has probability above it.

    Returns:
        ``pred`` (B, H, W) long, the most probable class, and ``keep`` (B, H, W) bool: the
        candidate pixels whose most probable class is unseen and above the threshold.
    """
    confidence, pred = probs.max(1)
    unseen_ids = torch.as_tensor(list(unseen), dtype=torch.long, device=pred.device)
    keep = candidates & torch.isin(pred, unseen_ids) & (confidence > threshold)
    return pred, keep


def annotation_lut(reduce_zero_label: bool = False, label_map: dict | None = None) -> np.ndarray:
    """(256,) uint8: the training label that mmseg's ``LoadAnnotations`` makes of each value of
    an annotation file, for a dataset's ``reduce_zero_label`` and ``label_map``.

    It runs mmseg's own transform on a one-row PNG holding 0..255, so that it agrees with the
    stock loader by construction."""
    from mmseg.datasets.transforms import LoadAnnotations
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'values.png'
        Image.fromarray(np.arange(256, dtype=np.uint8)[None]).save(path)
        results = LoadAnnotations()(dict(seg_map_path=str(path), seg_fields=[],
                                         reduce_zero_label=bool(reduce_zero_label),
                                         label_map=label_map))
    return results['gt_seg_map'].reshape(256).astype(np.uint8)


class PseudoLabeler:
    """Turns one annotation file's values and a model's class probabilities into the values of
    its pseudo-labelled copy, in the file's own encoding (the stock dataset loads it as it
    loads the original).

    - pixels whose ground truth is seen, void or otherwise ignored keep their file value;
    - pixels whose ground truth is an unseen class get the file value of the predicted unseen
      class (:func:`select_pseudo_labels`), or the file value of "ignore" (255 where the file
      format allows it) when the prediction is a seen class or not confident: the unseen
      ground truth never reaches the copy.

    Args:
        lut: (256,) training label of each file value (:func:`annotation_lut`).
        unseen: unseen class indices (training labels).
        threshold: confidence threshold of :func:`select_pseudo_labels`.
        ignore_index: the training label of ignored pixels.
    """

    def __init__(self, lut: np.ndarray, unseen: Sequence[int], threshold: float,
                 ignore_index: int = 255):
        self.lut = np.asarray(lut, dtype=np.int64)
        self.unseen, self.threshold, self.ignore_index = list(unseen), threshold, ignore_index
        if not self.unseen:
            raise ValueError('no unseen classes: there is nothing to pseudo-label')
        self.to_file = np.full(256, -1, dtype=np.int64)
        for value in range(255, -1, -1):  # the smallest file value wins; 255 for "ignore"
            self.to_file[self.lut[value]] = value
        if self.lut[255] == ignore_index:
            self.to_file[ignore_index] = 255
        missing = [c for c in self.unseen + [ignore_index] if self.to_file[c] < 0]
        if missing:
            raise ValueError(f'training labels {missing} have no value in the annotation files '
                             '(check the dataset\'s classes / label map against the model\'s)')

    def __call__(self, file_values: np.ndarray, probs: Tensor) -> tuple[np.ndarray, dict]:
        """``file_values`` (H, W) uint8 as read from the annotation file, ``probs`` (C, H, W)
        -> the copy's values (H, W) uint8 and counts: ``unseen_pixels`` (candidates),
        ``labelled`` ({class: pixels given that pseudo-label})."""
        if tuple(probs.shape[-2:]) != tuple(file_values.shape):
            raise ValueError(f'prediction {tuple(probs.shape[-2:])} and annotation '
                             f'{tuple(file_values.shape)} differ in size')
        labels = torch.from_numpy(self.lut[file_values])
        candidates = unseen_pixel_mask(labels, self.unseen, self.ignore_index)
        pred, keep = select_pseudo_labels(probs[None].float().cpu(), candidates[None],
                                          self.unseen, self.threshold)
        pred, keep, candidates = pred[0].numpy(), keep[0].numpy(), candidates.numpy()
        out = file_values.copy()
        out[candidates] = self.to_file[self.ignore_index]
        out[keep] = self.to_file[pred[keep]]
        counts = np.bincount(pred[keep], minlength=max(self.unseen) + 1)
        return out, dict(unseen_pixels=int(candidates.sum()),
                         labelled={c: int(counts[c]) for c in self.unseen})
