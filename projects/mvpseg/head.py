"""``mmext.MVPSegHead``: multi-view prompt decode head for open-vocabulary segmentation."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import accuracy
from mmseg.models.utils import resize
from torch import Tensor

from mmext.clip import OpenCLIPModel, PromptLearner
from mmext.evaluation import split_classes
from mmext.registry import MODELS

from .pseudo_labels import select_pseudo_labels, unseen_pixel_mask

INACTIVE = -1e4  # logit of a class that is not a candidate (unseen names in inductive training)


def resolve_class_names(class_names: Sequence[str] | str) -> list[str]:
    """A list of names, or the classes of the mmseg dataset type named by a string."""
    if not isinstance(class_names, str):
        return list(class_names)
    from mmseg.registry import DATASETS
    dataset = DATASETS.get(class_names)
    if dataset is None:
        raise ValueError(f'class_names={class_names!r}: no such mmseg dataset type; give a '
                         'list of class names or a dataset type such as "COCOStuffDataset"')
    return list(dataset.METAINFO['classes'])


@MODELS.register_module()
class MVPSegHead(BaseDecodeHead):
    """Cosine logits between dense CLIP features and K learned prompt views per class.

    ``forward`` takes the segmentor's features ``[dense (B, D, h, w), global (B, D)]`` (both
    L2-normalised) and gives (B, C, h, w) logits over all ``class_names``:

    - per view k: ``S_k = logit_scale * cos(F_p, t_{c,k})``, ``t_{c,k}`` the text embedding of
      ``[SOS] P_k <name_c> . [EOS]`` with the learned context P_k shared by all classes;
    - merged: ``S = mean_k S_k`` (or max);
    - global prompt refining (``gpr``): presence ``pi = softmax_c(logit_scale * cos(z, t^g_c))``
      from a separate global context; at inference the output is
      ``log(softmax(S) * pi / sum_c(...))`` with classes of ``pi < threshold`` removed.

    Training uses labels of ``seen_classes`` only; pixels of other classes are ignored.
    Inductive: only seen names are candidates during training. Transductive: all names are,
    and the pixels left unlabelled because their class is unseen (never void boundaries or crop
    padding) whose prediction is an unseen class with probability above
    ``pseudo_label_threshold`` become pseudo-labels, on the fly.

    Args:
        class_names: every class, in label order, or the name of an mmseg dataset type
            (``'COCOStuffDataset'``) whose classes to take.
        seen_classes / unseen_classes: the classes with / without training labels, by name or
            index; give one of them, the other is the rest.
        class_texts: text to use for some class names (``{'tvmonitor': 'tv monitor'}``);
            others are used as they are, with ``-`` and ``_`` read as spaces.
        in_channels: D, the CLIP joint-space width.
        num_prompts: K views per class (1: a single learned prompt).
        num_context: M context tokens per view.
        class_position: where the name goes in the prompt (``'end'``, ``'middle'``,
            ``'front'``).
        merge: ``'mean'`` or ``'max'`` over views.
        learn_prompts: ``False`` gives the zero-shot baseline: fixed ``templates`` (prompt
            ensembling), nothing to train.
        context_init: words whose token embeddings start every view's context (CoOp's word
            initialisation, e.g. ``'a photo of a'``), plus N(0, 0.02^2) noise so that the views
            differ; ``num_context`` must equal their token count. ``None``: N(0, 0.02^2).
        oc_loss: the orthogonal constraint loss config
            (``dict(type='mmext.OrthogonalConstraintLoss', loss_weight=0.1)``), or ``None``.
        gpr: ``dict(loss=..., threshold=0.01, num_context=M, reweight=True)`` to use global
            prompt refining. ``reweight=False`` keeps GPR as a filter only: classes with
            ``pi_c < threshold`` are removed, the others keep their pixel probabilities (the
            spec multiplies them by ``pi_c``); an inference-time choice.
        setting: ``'inductive'`` or ``'transductive'``.
        logit_scale: the cosine temperature (CLIP: 100).
    """

    def __init__(self, class_names: Sequence[str] | str, in_channels: int,
                 seen_classes: Sequence[str | int] | None = None,
                 unseen_classes: Sequence[str | int] | None = None,
                 class_texts: dict[str, str] | None = None, num_prompts: int = 3,
                 num_context: int = 16,
                 class_position: str = 'end', merge: str = 'mean', learn_prompts: bool = True,
                 context_init: str | None = None,
                 templates: Sequence[str] = ('a photo of a {}.', ),
                 oc_loss: dict | None = None,
                 gpr: dict | None = None, setting: str = 'inductive',
                 pseudo_label_threshold: float = 0.9, logit_scale: float = 100.0, **kwargs):
        names = resolve_class_names(class_names)
        kwargs.setdefault('dropout_ratio', 0.0)
        kwargs.setdefault('init_cfg', None)
        super().__init__(in_channels=in_channels, channels=in_channels,
                         num_classes=len(names), **kwargs)
        del self.conv_seg  # classes are text embeddings, not a convolution
        if merge not in ('mean', 'max'):
            raise ValueError(f"merge must be 'mean' or 'max', not {merge!r}")
        if setting not in ('inductive', 'transductive'):
            raise ValueError(f"setting must be 'inductive' or 'transductive', not {setting!r}")
        self.class_names = names
        self.class_texts = [(class_texts or {}).get(n, n.replace('-', ' ').replace('_', ' '))
                            for n in names]
        self.seen, self.unseen = split_classes(names, seen_classes, unseen_classes)
        self.num_prompts, self.num_context = num_prompts, num_context
        self.class_position, self.merge = class_position, merge
        self.learn_prompts, self.templates = learn_prompts, list(templates)
        self.context_init = context_init
        self.oc_loss = MODELS.build(oc_loss) if oc_loss and learn_prompts else None
        self.gpr_cfg = dict(gpr) if gpr else None
        unknown = set(self.gpr_cfg or {}) - {'loss', 'threshold', 'num_context', 'reweight'}
        if unknown:
            raise ValueError(f'gpr: unknown keys {sorted(unknown)}; it takes loss, threshold, '
                             'num_context and reweight')
        self.gpr_loss = MODELS.build(self.gpr_cfg.pop('loss', dict(
            type='mmext.GlobalPromptLoss'))) if self.gpr_cfg else None
        self.setting, self.pseudo_label_threshold = setting, pseudo_label_threshold
        self.logit_scale = logit_scale
        self.clip: OpenCLIPModel | None = None

    # ---------------------------------------------------------------- set-up
    def bind_clip(self, clip: OpenCLIPModel) -> None:
        """Use ``clip``'s text tower (owned by the segmentor: kept out of this head's
        state dict) and create the learnable contexts for its token width."""
        if clip.embed_dim != self.in_channels:
            raise ValueError(f'in_channels={self.in_channels} but the CLIP joint space has '
                             f'{clip.embed_dim} dimensions')
        self.__dict__['clip'] = clip  # a reference, not a sub-module
        width = clip.text_tower.width
        if self.learn_prompts:
            init = None
            if self.context_init:
                tower = clip.text_tower
                _, ids, _ = tower.split_special(self.context_init)
                if len(ids) != self.num_context:
                    raise ValueError(
                        f'context_init {self.context_init!r} is {len(ids)} tokens for this text '
                        f'tower; set num_context={len(ids)} (CoOp: one context token per word '
                        'token)')
                with torch.no_grad():
                    init = tower.embed_ids(ids)
            self.prompts = PromptLearner(width, self.num_context, self.num_prompts,
                                         self.class_position, init_embeddings=init)
        if self.gpr_cfg is not None:
            self.global_prompt = PromptLearner(
                width, self.gpr_cfg.get('num_context', self.num_context), 1, self.class_position)

    def _check_bound(self) -> None:
        if self.clip is None:
            raise RuntimeError('MVPSegHead needs a CLIP text tower: build it inside '
                               'mmext.MVPSegmentor, or call head.bind_clip(clip)')

    def active_classes(self) -> list[int]:
        """Candidate classes: seen ones in inductive training, else all."""
        if self.training and self.setting == 'inductive':
            return self.seen
        return list(range(self.num_classes))

    # ---------------------------------------------------------------- text
    def train(self, mode: bool = True):
        self._text_cache = {}  # prompts may change in training; eval reuses the embeddings
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._text_cache = {}  # new prompt weights
        super()._load_from_state_dict(*args, **kwargs)

    def _cached(self, key: tuple, compute) -> Tensor:
        if self.training:
            return compute()
        cache = self.__dict__.setdefault('_text_cache', {})
        if key not in cache:
            with torch.no_grad():
                cache[key] = compute()
        return cache[key]

    def view_embeddings(self, classes: Sequence[int]) -> Tensor:
        """(C_a, K, D) normalised text embeddings of the candidate classes (computed once per
        evaluation: the prompts do not change outside training)."""
        self._check_bound()
        names = [self.class_texts[i] for i in classes]

        def compute():
            if self.learn_prompts:
                views = self.prompts(self.clip.text_tower, names)
            else:
                with torch.no_grad():
                    views = self.clip.zero_shot_weights(names, self.templates)[:, None]
            return F.normalize(views, dim=-1)
        return self._cached(('views', tuple(classes)), compute)

    def presence_logits(self, image_embedding: Tensor, classes: Sequence[int]) -> Tensor:
        """GPR: (B, C_a) logits of each candidate class being in the image."""
        names = [self.class_texts[i] for i in classes]
        text = self._cached(('global', tuple(classes)), lambda: F.normalize(
            self.global_prompt(self.clip.text_tower, names)[:, 0], dim=-1))
        return self.logit_scale * image_embedding @ text.T

    # ---------------------------------------------------------------- forward
    def view_logits(self, inputs: Sequence[Tensor], classes: Sequence[int]
                    ) -> tuple[Tensor, Tensor]:
        """Per-view logits (B, K, C_a, h, w) and the view embeddings (C_a, K, D)."""
        dense = inputs[0]
        if dense.ndim != 4 or dense.shape[1] != self.in_channels:
            raise ValueError(f'expected dense features (B, {self.in_channels}, h, w), got '
                             f'{tuple(dense.shape)}')
        views = self.view_embeddings(classes)
        return self.logit_scale * torch.einsum('bdhw,ckd->bkchw', dense, views), views

    def merge_views(self, per_view: Tensor) -> Tensor:
        return per_view.mean(1) if self.merge == 'mean' else per_view.amax(1)

    def _scatter(self, logits: Tensor, classes: Sequence[int]) -> Tensor:
        """(B, C_a, ...) candidate logits -> (B, C, ...) with the other classes inactive."""
        if len(classes) == self.num_classes:
            return logits
        shape = (logits.shape[0], self.num_classes) + logits.shape[2:]
        full = logits.new_full(shape, INACTIVE)
        full[:, list(classes)] = logits
        return full

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits (B, C, h, w); with GPR at inference, log of the refined probabilities."""
        classes = self.active_classes()
        per_view, _ = self.view_logits(inputs, classes)
        logits = self.merge_views(per_view)
        if self.gpr_cfg is not None and not self.training:
            # in log space: with a temperature of 100 the probabilities underflow
            log_pi = self.presence_logits(inputs[1], classes).log_softmax(-1)  # (B, C_a)
            dropped = log_pi.exp() < self.gpr_cfg.get('threshold', 0.01)
            if not self.gpr_cfg.get('reweight', True):
                log_pi = torch.zeros_like(log_pi)  # filter only
            log_pi = log_pi.masked_fill(dropped, INACTIVE)  # finite: resizing -inf gives NaN
            logits = logits.log_softmax(1) + log_pi[:, :, None, None]
            logits = logits - logits.logsumexp(1, keepdim=True)
        return self._scatter(logits, classes)

    # ---------------------------------------------------------------- losses
    def _training_labels(self, batch_data_samples) -> tuple[Tensor, Tensor]:
        """(B, 1, H, W) labels with every class but the seen ones set to ignore, and the
        (B, 1, H, W) mask of the pixels whose label is an unseen class: the only pixels a
        transductive run may pseudo-label (void boundaries, crop padding and other ignored
        pixels never are)."""
        gt = self._stack_batch_gt(batch_data_samples)
        index = gt.long().clamp(0, max(self.num_classes, 256) - 1)
        keep = torch.zeros(max(self.num_classes, 256), dtype=torch.bool, device=gt.device)
        keep[self.seen] = True
        labels = gt.clone()
        labels[~keep[index]] = self.ignore_index
        return labels, unseen_pixel_mask(gt, self.unseen, self.ignore_index)

    def loss(self, inputs, batch_data_samples, train_cfg) -> dict:
        if not self.learn_prompts and self.gpr_loss is None:
            raise RuntimeError('this head has nothing to train (learn_prompts=False, no GPR): '
                               'evaluate it with tools/test.py instead')
        classes = self.active_classes()
        per_view, views = self.view_logits(inputs, classes)
        labels, unseen_pixels = self._training_labels(batch_data_samples)
        logits = resize(self._scatter(self.merge_views(per_view), classes),
                        size=labels.shape[2:], mode='bilinear', align_corners=self.align_corners)
        labels, unseen_pixels = labels.squeeze(1), unseen_pixels.squeeze(1)
        losses = {}
        if self.setting == 'transductive' and self.unseen:
            with torch.no_grad():
                pred, pseudo = select_pseudo_labels(logits.softmax(1), unseen_pixels,
                                                    self.unseen, self.pseudo_label_threshold)
                labels = torch.where(pseudo, pred, labels)
                losses['pseudo_label_ratio'] = pseudo.float().mean()
        if self.learn_prompts:
            losses['loss_ce'] = self.loss_decode(logits, labels, ignore_index=self.ignore_index)
        losses['acc_seg'] = accuracy(logits, labels, ignore_index=self.ignore_index)
        if self.oc_loss is not None:
            losses[self.oc_loss.loss_name] = self.oc_loss(views)
        if self.gpr_loss is not None:
            presence = self.presence_logits(inputs[1], classes)
            present = torch.zeros(labels.shape[0], len(classes), device=labels.device)
            for col, cls in enumerate(classes):
                present[:, col] = (labels == cls).flatten(1).any(1).float()
            losses[self.gpr_loss.loss_name] = self.gpr_loss(presence, present)
        return losses
