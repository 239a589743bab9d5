"""The Decom-CAM evaluation protocol through the stock ``runner.test()``.

``CAMEvalModel`` wraps a classifier (any mmpretrain ``ImageClassifier`` config, its checkpoint
loaded here) and a CAM method from ``CAM_METHODS``. Its ``test_step`` classifies the batch,
computes a saliency map of the ground-truth class for every image (gradients enabled inside the
test loop's ``no_grad``) and measures the map (``mmext/evaluation/cam_metrics.py``): Average
Drop and Increase in Confidence (probability of the image multiplied by its map against the
image's), deletion and insertion AUC (RISE's curves against a blurred copy), and, when the
data sample carries a ground-truth mask (``gt_mask``, (H, W) bool), the energy pointing game.

``StratifiedCAMMetric`` splits the evaluated images by correct / wrong top-1 and by quintiles of
the ground-truth probability, and reports every measure per subset and macro-averaged over the
subsets, so that methods compared on one model see the same subsets.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import load_checkpoint

from mmext.evaluation.cam_metrics import (
    average_drop,
    deletion_insertion,
    energy_pointing_game,
    increase_in_confidence,
)
from mmext.registry import CAM_METHODS, METRICS, MODELS

from .decom_cam import gaussian_blur
from .layers import resolve_target_layers, token_reshape_transform
from .targets import ClassLogitTarget

MEASURES = ('average_drop', 'increase_in_confidence', 'deletion_auc', 'insertion_auc',
            'energy_pointing_game')


class ClassProbabilities(torch.nn.Module):
    """The classifier's logits (``mode='tensor'``) turned into probabilities: the model a CAM
    method and the measures see."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x).softmax(-1)


@MODELS.register_module()
class CAMEvalModel(BaseModel):
    """A classifier and a CAM method, evaluated by ``runner.test()``.

    Args:
        classifier: an mmpretrain classifier config (``ImageClassifier``).
        cam: ``dict(type=<CAM_METHODS name>, target_layers=[names], ...)``; other keys go to the
            method (``num_components``, ...). ``num_prefix_tokens`` sets a token reshape.
        checkpoint: the classifier's weights (a runner checkpoint or a plain state dict).
        steps: pixel fractions of the deletion / insertion curves.
        blur_sigma: sigma of the blurred baseline of the curves, in pixels.
    """

    def __init__(self, classifier: dict, cam: dict, checkpoint: str | None = None,
                 steps: int = 20, blur_sigma: float = 10.0, data_preprocessor: dict | None = None,
                 init_cfg=None):
        from mmpretrain.registry import MODELS as PRETRAIN_MODELS
        classifier = dict(classifier)
        if data_preprocessor is not None:  # the runner passes a config's top-level one here
            classifier.setdefault('data_preprocessor', data_preprocessor)
        classifier = PRETRAIN_MODELS.build(classifier)
        super().__init__(data_preprocessor=classifier.data_preprocessor, init_cfg=init_cfg)
        self.classifier = classifier
        if checkpoint is not None:
            load_checkpoint(self.classifier, checkpoint, map_location='cpu', strict=True)
        self.cam_cfg = dict(cam)
        if self.cam_cfg.get('type') not in CAM_METHODS.module_dict:
            raise ValueError(f"cam type {self.cam_cfg.get('type')!r} is not a CAM method; "
                             f'known: {sorted(CAM_METHODS.module_dict)}')
        if not self.cam_cfg.get('target_layers'):
            raise ValueError('cam needs target_layers=[module names], e.g. backbone.layer4')
        resolve_target_layers(self.classifier, self.cam_cfg['target_layers'])  # fail early
        self.steps, self.blur_sigma = steps, blur_sigma
        # the CAM's view of the classifier; not a sub-module (its weights are classifier.*)
        self.__dict__['probabilities'] = ClassProbabilities(self.classifier)
        import inspect
        method = CAM_METHODS.get(self.cam_cfg['type'])
        accepted = set(inspect.signature(method.__init__).parameters)
        extra = set(self.cam_cfg) - {'type', 'target_layers', 'num_prefix_tokens'} - accepted
        if extra:
            raise ValueError(f"{self.cam_cfg['type']} does not take {sorted(extra)}; remove "
                             'them from model.cam (a child config with cam=dict(_delete_=True, '
                             '...) replaces the method)')
        self.register_load_state_dict_pre_hook(CAMEvalModel._classifier_keys)

    @staticmethod
    def _classifier_keys(module, state_dict: dict, prefix: str, *args) -> None:
        """A classifier's own checkpoint (``backbone.*``, ``head.*``) loads into the wrapper
        (``classifier.*``): ``tools/test.py CONFIG CLASSIFIER_CHECKPOINT`` works."""
        inner = f'{prefix}classifier.'
        for key in [k for k in state_dict if k.startswith(prefix) and not
                    k.startswith(inner)]:
            state_dict[inner + key[len(prefix):]] = state_dict.pop(key)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode != 'tensor':
            raise RuntimeError('CAMEvalModel only evaluates (tools/test.py); it does not train')
        return self.classifier(inputs)

    def _method(self):
        cfg = dict(self.cam_cfg)
        method = CAM_METHODS.get(cfg.pop('type'))
        layers = resolve_target_layers(self.classifier, cfg.pop('target_layers'))
        prefix = cfg.pop('num_prefix_tokens', None)
        reshape = token_reshape_transform(prefix) if prefix is not None else None
        return method(model=self.probabilities, target_layers=layers,
                      reshape_transform=reshape, **cfg)

    def test_step(self, data) -> list:
        data = self.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        labels = torch.cat([s.gt_label for s in samples]).to(inputs.device)
        with torch.no_grad():
            probs = self.probabilities(inputs)
        targets = [ClassLogitTarget(int(c)) for c in labels]
        with torch.enable_grad(), self._method() as method:
            saliency = torch.from_numpy(method(inputs, targets)).to(inputs)  # (B, H, W)
        with torch.no_grad():
            explained = self.probabilities(inputs * saliency[:, None])
            rows = torch.arange(len(labels))
            full, after = probs[rows, labels], explained[rows, labels]
            drop, increase = average_drop(full, after), increase_in_confidence(full, after)
            blurred = gaussian_blur(inputs, self.blur_sigma)
            for i, sample in enumerate(samples):
                label = int(labels[i])
                curves = deletion_insertion(lambda x, k=label: self.probabilities(x)[:, k],
                                            inputs[i], saliency[i], blurred[i], self.steps)
                measures = dict(average_drop=float(drop[i]),
                                increase_in_confidence=float(increase[i]),
                                deletion_auc=curves['deletion_auc'],
                                insertion_auc=curves['insertion_auc'])
                mask = sample.get('gt_mask')
                if mask is not None:
                    mask = torch.as_tensor(mask, dtype=torch.bool, device=inputs.device)
                    measures['energy_pointing_game'] = float(
                        energy_pointing_game(saliency[i:i + 1], mask[None])[0])
                sample.set_field(measures, 'cam_measures', field_type='metainfo')
                sample.set_pred_score(probs[i])
        return samples


@METRICS.register_module()
class StratifiedCAMMetric(BaseMetric):
    """Saliency measures per subset of the evaluated images, and their macro-average.

    Subsets: ``correct`` / ``wrong`` (top-1), and ``q1`` ... ``q<n>``: quantile bins of the
    ground-truth probability over the evaluated set (``num_bins`` = 5: quintiles; q1 the least
    confident). Keys: ``<subset>/<measure>``, ``macro/<measure>`` (the mean over the non-empty
    subsets of a split, correct / wrong and the bins averaged separately) and
    ``<subset>/images``.
    """

    default_prefix = 'cam'

    def __init__(self, num_bins: int = 5, collect_device: str = 'cpu',
                 prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_bins < 1:
            raise ValueError(f'num_bins must be at least 1, got {num_bins}')
        self.num_bins = num_bins

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            measures = sample.get('cam_measures')
            if measures is None:
                raise KeyError('StratifiedCAMMetric needs the cam_measures of CAMEvalModel')
            score = sample.get('pred_score')
            label = int(sample.get('gt_label')[0])
            self.results.append(dict(measures, gt_prob=float(score[label]),
                                     correct=int(score.argmax()) == label))

    def subsets(self, results: list) -> dict[str, np.ndarray]:
        """Boolean index of every subset over ``results``."""
        prob = np.array([r['gt_prob'] for r in results])
        correct = np.array([r['correct'] for r in results])
        found = {'correct': correct, 'wrong': ~correct}
        edges = np.quantile(prob, np.linspace(0, 1, self.num_bins + 1)[1:-1])
        bins = np.searchsorted(edges, prob, side='right')
        for b in range(self.num_bins):
            found[f'q{b + 1}'] = bins == b
        return found

    def compute_metrics(self, results: list) -> dict:
        out = {}
        measures = [m for m in MEASURES if all(m in r for r in results)]
        groups = self.subsets(results)
        for name, index in groups.items():
            out[f'{name}/images'] = int(index.sum())
            for m in measures:
                values = [r[m] for r, keep in zip(results, index) if keep]
                out[f'{name}/{m}'] = float(np.mean(values)) if values else float('nan')
        for m in measures:
            for split, names in (('accuracy', ['correct', 'wrong']),
                                 ('confidence', [f'q{b + 1}' for b in range(self.num_bins)])):
                values = [out[f'{n}/{m}'] for n in names if out[f'{n}/images']]
                out[f'macro_{split}/{m}'] = float(np.mean(values))
        return out
