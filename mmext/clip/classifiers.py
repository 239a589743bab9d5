"""Image classifiers on a frozen open_clip model: zero-shot, CoOp and a linear probe.

They share :class:`CLIPClassifier`: global class ids, a set of *seen* classes that can grow
(class-incremental learning: ``ClassIncrementalLoop`` calls ``set_seen_classes``), logits over
the seen classes only, and predictions whose ``pred_score`` covers all classes (zero for the
unseen ones) so that mmpretrain's ``Accuracy`` and mmext's ``ContinualAccuracy`` read them.
Subclasses say how class logits come about (:meth:`CLIPClassifier.seen_logits`).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from mmpretrain.models.classifiers.base import BaseClassifier
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from mmext.datasets.class_incremental import normalise_class_name
from mmext.registry import MODELS

from .model import OpenCLIPModel
from .prompt import ProDAPromptLearner, PromptLearner


class CLIPClassifier(BaseClassifier):
    """Base: a frozen open_clip model and a growing set of seen classes.

    Args:
        clip: ``OpenCLIPModel`` arguments; the model is frozen (``freeze=True``) unless said.
        class_names: every class name, in global id order (underscores read as spaces), or the path of a text file with one
            name per line, or a CoOp split file ``split_zhou_*.json`` (read on first use). ``None``: ``ClassIncrementalLoop`` sets them
            from the dataset (``set_class_names``).
        data_preprocessor: mmpretrain's ``ClsDataPreprocessor`` with the CLIP's mean and std.

    Shapes: inputs (B, 3, H, W); ``forward(mode='tensor')`` gives (B, S) logits over the S seen
    classes, in the order of ``seen_classes``.
    """

    def __init__(self, clip: dict, class_names: Sequence[str] | str | None = None,
                 data_preprocessor: dict | None = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        self.clip = OpenCLIPModel(**dict(dict(freeze=True), **clip))
        self.class_names: list[str] | None = None
        self.seen_classes: list[int] = []
        self._class_names_file = class_names if isinstance(class_names, str) else None
        if class_names is not None and self._class_names_file is None:
            self.set_class_names(class_names)

    # --------------------------------------------------------- class sets
    def set_class_names(self, class_names: Sequence[str]) -> None:
        names = [normalise_class_name(n) for n in class_names]
        if not names:
            raise ValueError('the class list is empty: give the class names to classify')
        self.class_names = names
        self.seen_classes = list(range(len(names)))

    def set_seen_classes(self, class_ids: Sequence[int]) -> None:
        """Classes the logits cover from now on (global ids, in the order given)."""
        self._require_names()
        ids = [int(c) for c in class_ids]
        bad = [c for c in ids if not 0 <= c < len(self.class_names)]
        if bad or not ids or len(set(ids)) != len(ids):
            raise ValueError(f'seen classes {ids} must be distinct ids of the '
                             f'{len(self.class_names)} classes')
        self.seen_classes = ids

    def seen_names(self) -> list[str]:
        self._require_names()
        return [self.class_names[c] for c in self.seen_classes]

    def _require_names(self) -> None:
        if self.class_names is None and self._class_names_file is not None:
            path = Path(self._class_names_file)
            if not path.is_file():
                raise FileNotFoundError(
                    f'class names file {path} does not exist: it lists one class name per '
                    'line, in the order of the dataset\'s class ids (the file the dataset\'s '
                    'metainfo classes names), or is a CoOp split file (split_zhou_*.json)')
            if path.suffix == '.json':
                from mmext.datasets.few_shot import split_class_names
                self.set_class_names(split_class_names(path))
            else:
                self.set_class_names([line.strip() for line in path.read_text().splitlines()
                                      if line.strip()])
        if self.class_names is None:
            raise RuntimeError(f'{type(self).__name__} has no class names: give class_names in '
                               'its config or train it with ClassIncrementalLoop')

    def get_extra_state(self) -> dict:
        return dict(class_names=self.class_names, seen_classes=self.seen_classes)

    def set_extra_state(self, state: dict) -> None:
        if state.get('class_names') is not None:
            self.class_names = list(state['class_names'])
            self.seen_classes = list(state['seen_classes'])

    # ------------------------------------------------------------ forward
    def extract_feat(self, inputs: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, D) normalised image features of the frozen image tower."""
        with torch.no_grad():
            return self.clip.encode_image(inputs).float()

    def view_features(self, inputs: Tensor | list[Tensor]) -> Tensor:
        """A batch (B, 3, H, W), or a list of V views of it -> (B, V, D) image features."""
        views = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        return torch.stack([self.extract_feat(v) for v in views], dim=1)

    def seen_logits(self, feats: Tensor, data_samples=None) -> tuple[Tensor, dict]:
        """(B, D) image features -> (B, S) logits over the seen classes, and extra losses."""
        raise NotImplementedError

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'tensor':
            return self.seen_logits(self.extract_feat(inputs), data_samples)[0]
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'invalid mode {mode!r}: use tensor, loss or predict')

    def _targets(self, data_samples) -> Tensor:
        position = {c: i for i, c in enumerate(self.seen_classes)}
        labels = [int(s.gt_label.reshape(-1)[0]) for s in data_samples]
        unseen = sorted({c for c in labels if c not in position})
        if unseen:
            raise ValueError(f'training labels {unseen} are not among the seen classes '
                             f'{self.seen_classes}; the task split and the model disagree')
        return torch.tensor([position[c] for c in labels], device=self.clip.logit_scale.device)

    def loss(self, inputs: Tensor, data_samples) -> dict:
        logits, extra = self.seen_logits(self.extract_feat(inputs), data_samples)
        return dict(loss_cls=F.cross_entropy(logits, self._targets(data_samples)), **extra)

    def predict(self, inputs: Tensor, data_samples=None) -> list[DataSample]:
        logits, _ = self.seen_logits(self.extract_feat(inputs), data_samples)
        probs = logits.float().softmax(-1)
        scores = probs.new_zeros(len(probs), len(self.class_names))
        scores[:, self.seen_classes] = probs
        seen = torch.tensor(self.seen_classes, device=probs.device)
        labels = seen[probs.argmax(-1)]
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(probs))]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples

    def scaled_cosine(self, feats: Tensor, text_feats: Tensor) -> Tensor:
        """CLIP's logits: ``logit_scale * cos``; feats (B, D), text (S, D) or (B, S, D)."""
        text = F.normalize(text_feats.float(), dim=-1)
        scale = self.clip.logit_scale.float()
        if text.dim() == 3:
            return scale * torch.einsum('bd,bsd->bs', feats, text)
        return scale * feats @ text.T


@MODELS.register_module()
class ZeroShotCLIPClassifier(CLIPClassifier):
    """CLIP's zero-shot classifier: prompt-ensembled text weights of the class names.

    Args:
        templates: prompt templates with ``{}`` for the class name.
    """

    def __init__(self, clip: dict, templates: Sequence[str] = ('a photo of a {}.', ), **kwargs):
        super().__init__(clip, **kwargs)
        self.templates = list(templates)
        self._weights: dict[tuple, Tensor] = {}

    def seen_logits(self, feats, data_samples=None):
        names = tuple(self.seen_names())
        if names not in self._weights:
            self._weights[names] = self.clip.zero_shot_weights(names, self.templates).float()
        return self.scaled_cosine(feats, self._weights[names]), {}


@MODELS.register_module()
class CoOpClassifier(CLIPClassifier):
    """CoOp: one learnable context of M tokens shared by all classes, ``[ctx] <name> .``.

    Args:
        num_context: M (CoOp: 16).
        init_words: start the context from these words' token embeddings (M is then their
            token count), e.g. ``'a photo of a'``; ``None``: N(0, 0.02^2).
        class_position: ``'end'``, ``'middle'`` or ``'front'``.
    """

    def __init__(self, clip: dict, num_context: int = 16, init_words: str | None = None,
                 class_position: str = 'end', **kwargs):
        super().__init__(clip, **kwargs)
        tower = self.clip.text_tower
        init = None
        if init_words:
            _, ids, _ = tower.split_special(init_words)
            init = tower.embed_ids(ids).detach()
            num_context = len(ids)
        self.prompt = PromptLearner(tower.width, num_context=num_context,
                                    class_position=class_position, init_embeddings=init)

    def seen_logits(self, feats, data_samples=None):
        text = self.prompt(self.clip.text_tower, self.seen_names())[:, 0]  # (S, D)
        return self.scaled_cosine(feats, text), {}


@MODELS.register_module()
class LinearProbeClassifier(CLIPClassifier):
    """A linear layer on the frozen, normalised image features (the linear-probe baseline).

    Args:
        num_classes: outputs of the layer (all classes of the sequence); defaults to the
            number of ``class_names``.
        scale: the normalised features are multiplied by it (CLIP's 100 keeps the softmax as
            sharp as CLIP's own logits).
    """

    def __init__(self, clip: dict, num_classes: int | None = None, scale: float = 100.0,
                 **kwargs):
        super().__init__(clip, **kwargs)
        if num_classes is None:
            if self.class_names is None:
                raise ValueError('LinearProbeClassifier needs num_classes or class_names')
            num_classes = len(self.class_names)
        self.fc = nn.Linear(self.clip.embed_dim, int(num_classes))
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.scale = scale

    def set_class_names(self, class_names):
        super().set_class_names(class_names)
        if hasattr(self, 'fc') and len(self.class_names) != self.fc.out_features:
            raise ValueError(f'{len(self.class_names)} class names for a linear layer of '
                             f'{self.fc.out_features} outputs')

    def seen_logits(self, feats, data_samples=None):
        seen = torch.tensor(self.seen_classes, device=feats.device)
        return self.fc(self.scale * feats)[:, seen], {}


def prompt_distribution(text_feats: Tensor) -> tuple[Tensor, Tensor]:
    """(C, k, D) class features of k prompts -> per-class mean (C, D) and variance (C, D) of
    the normalised features."""
    feats = F.normalize(text_feats.float(), dim=-1)
    return feats.mean(1), feats.var(1, unbiased=False)


@MODELS.register_module()
class ProDAClassifier(CLIPClassifier):
    """ProDA: a distribution of K prompts per class on a frozen CLIP.

    Training samples ``prompts_per_step`` prompts; with the normalised image feature z, the
    class-c logit is ``s z . mu_c + s^2 / 2 * sum_d z_d^2 var_cd`` (the mean term and the
    diagonal-covariance correction: the variance of ``s z . t_c`` over the prompts).
    Evaluation uses all K prompts and ``s cos(z, mu_c)``.

    Args:
        num_prompts, num_context, prompts_per_step: ``ProDAPromptLearner`` (32, 16, 4).
    """

    def __init__(self, clip: dict, num_prompts: int = 32, num_context: int = 16,
                 prompts_per_step: int = 4, **kwargs):
        super().__init__(clip, **kwargs)
        self.prompts = ProDAPromptLearner(self.clip.text_tower.width, num_prompts=num_prompts,
                                          num_context=num_context,
                                          prompts_per_step=prompts_per_step)
        self._test_text: Tensor | None = None

    def train(self, mode: bool = True):
        self._test_text = None  # prompts change in training
        return super().train(mode)

    def class_distribution(self) -> tuple[Tensor, Tensor]:
        """Per seen class: mean (S, D) and variance (S, D) of the normalised prompt features;
        sampled prompts in training, all of them (cached) otherwise."""
        tower = self.clip.text_tower
        if self.training:
            return prompt_distribution(self.prompts(tower, self.seen_names(),
                                                    self.prompts.sample()))
        key = tuple(self.seen_classes)
        if self._test_text is None or self._test_key != key:
            with torch.no_grad():
                self._test_text = prompt_distribution(self.prompts(tower, self.seen_names()))
            self._test_key = key
        return self._test_text

    def distribution_logits(self, feats: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        scale = self.clip.logit_scale.float()
        if self.training:
            return scale * feats @ mean.T + scale ** 2 / 2 * (feats ** 2) @ var.T
        return self.scaled_cosine(feats, mean)

    def seen_logits(self, feats, data_samples=None):
        mean, var = self.class_distribution()
        return self.distribution_logits(feats, mean, var), {}


@MODELS.register_module()
class TipAdapterClassifier(ZeroShotCLIPClassifier):
    """Tip-Adapter (Zhang et al., 2022), training-free: zero-shot logits plus a cache model of
    the few-shot training features.

    ``logits = s z . W_zs + alpha * exp(-beta (1 - z . F^T)) L``: F (N, D) the normalised
    features of the N training images (each averaged over the augmented passes of
    ``InitFromTrainFeaturesHook``), L (N, C) their one-hot labels.

    Args:
        alpha: weight of the cache (1.0).
        beta: sharpness of the affinities (5.5, the paper's ImageNet value; it searches both on
            the validation split, which is not done here).
        templates: the zero-shot templates.
    """

    def __init__(self, clip: dict, alpha: float = 1.0, beta: float = 5.5, **kwargs):
        super().__init__(clip, **kwargs)
        self.alpha, self.beta = alpha, beta
        self.register_buffer('cache_keys', torch.zeros(0), persistent=True)
        self.register_buffer('cache_labels', torch.zeros(0, dtype=torch.long), persistent=True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ('cache_keys', 'cache_labels'):  # the cache's size comes with it
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def needs_feature_init(self) -> bool:
        return self.cache_keys.numel() == 0

    def init_from_features(self, feats: Tensor, labels: Tensor) -> None:
        """feats (N, R, D) features of N training images over R augmented views; labels (N,)."""
        self.cache_keys = F.normalize(F.normalize(feats.float(), dim=-1).mean(1), dim=-1)
        self.cache_labels = labels.long().to(self.cache_keys.device)

    def seen_logits(self, feats, data_samples=None):
        logits, _ = super().seen_logits(feats)
        if self.needs_feature_init():
            raise RuntimeError('the Tip-Adapter cache is empty: add '
                               "dict(type='mmext.InitFromTrainFeaturesHook') to custom_hooks "
                               'or load a checkpoint that holds it')
        seen = torch.tensor(self.seen_classes, device=feats.device)
        values = (self.cache_labels[:, None] == seen[None]).float()  # (N, S)
        affinity = torch.exp(-self.beta * (1 - feats @ self.cache_keys.T))
        return logits + self.alpha * affinity @ values, {}
