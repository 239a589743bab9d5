"""SADA's classifier: ProDA prompts, a selective attack, visual prototypes and EMD alignment."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmext.clip import encode_contexts_alone
from mmext.clip.classifiers import ProDAClassifier
from mmext.registry import MODELS

from .alignment import calibrate
from .attack import apply_perturbation, selective_perturbation


@MODELS.register_module()
class SADAClassifier(ProDAClassifier):
    """Few-shot CLIP with a selective attack and distribution alignment (spec section 7).

    Inputs are pixels in [0, 1] (``SelfSupDataPreprocessor`` with mean 0 and std 255); the
    model applies the CLIP's normalisation itself, because the attack perturbs pixels. A
    multi-view pipeline (mmpretrain's ``MultiView``) gives V views per image; every view is a
    training sample.

    One training step, for views x (V * B images) and labels y:

    1. text: ``prompts_per_step`` of the K ProDA prompts give each class a mean and variance;
    2. features ``z = f(x)`` (frozen CLIP), calibrated towards the label's prototype mean;
       ``loss_cls`` = CE of the ProDA logits;
    3. the adapter's map M; one FGSM step (or PGD) of ``eps`` on the CE, where ``1 - M > 0``:
       ``x_adv = clamp(x + (1 - M) delta, 0, 1)``; ``loss_adv`` = CE on x_adv, whose gradient
       reaches M; ``loss_area`` = ``(mean(M) - rho)^2``;
    4. ``loss_orth``: the prompts kept apart (all K, each alone);
    5. ``loss_emd``: the closed-form EMD between each class's prototype Gaussian and its
       prompt Gaussian.

    At test: all K prompts, features calibrated by the prototype-mean mixture, ``s cos(z, mu_c)``.

    Args:
        clip: ``OpenCLIPModel`` arguments (frozen).
        num_shots: k; the bank holds ``prototypes_per_shot * k`` prototypes per class.
        num_classes: C, when ``class_names`` is a file read later (a CoOp split file);
            default: the number of ``class_names``.
        num_prompts, num_context, prompts_per_step: ProDA's prompts (32, 16, 4).
        prototypes_per_shot: 8.
        attack: ``dict(eps=2/255, steps=1, step_size=None)``; ``None`` trains without it (the
            ablation): no adapter, no ``loss_adv`` or ``loss_area``.
        area_prior: ``AreaPriorLoss`` config (rho 0.5, weight 1).
        per_view_adapters: one adapter per view (the released code meant this, but its list
            aliases one adapter); ``False``: one shared adapter.
        num_views: views per image in training (4), with ``per_view_adapters``.
        orthogonality_loss: ``PromptOrthogonalityLoss`` config (weight 0.1); ``None`` drops it.
        emd_loss: ``GaussianEMDLoss`` config (squared, weight 1); ``None``: the ablation
            without alignment.
        calibration: w of the feature calibration (0.2; 0 turns it off).
        class_names: every class name.
    """

    def __init__(self, clip: dict, num_shots: int, num_classes: int | None = None,
                 num_prompts: int = 32,
                 num_context: int = 16, prompts_per_step: int = 4, prototypes_per_shot: int = 8,
                 attack: dict | None = None, area_prior: dict | None = None,
                 per_view_adapters: bool = False, num_views: int = 4,
                 orthogonality_loss: dict | None = None, emd_loss: dict | None = None,
                 calibration: float = 0.2, **kwargs):
        super().__init__(clip, num_prompts=num_prompts, num_context=num_context,
                         prompts_per_step=prompts_per_step, **kwargs)
        if num_classes is None:
            self._require_names()
            num_classes = len(self.class_names)
        if num_shots < 1:
            raise ValueError(f'num_shots must be at least 1, got {num_shots}')
        self.attack = None if attack is None else dict(dict(eps=2 / 255, steps=1), **attack)
        if self.attack is not None:
            count = num_views if per_view_adapters else 1
            self.adapters = nn.ModuleList(
                MODELS.build(dict(type='mmext.SelectiveAttackAdapter')) for _ in range(count))
            self.area_prior = MODELS.build(area_prior or dict(type='mmext.AreaPriorLoss'))
        self.orthogonality_loss = (MODELS.build(orthogonality_loss)
                                   if orthogonality_loss is not None else None)
        self.emd_loss = MODELS.build(emd_loss) if emd_loss is not None else None
        self.prototypes = MODELS.build(dict(
            type='mmext.PrototypeBank', num_classes=num_classes,
            num_prototypes=prototypes_per_shot * num_shots, dim=self.clip.embed_dim))
        self.calibration = calibration
        mean, std = self.clip.image_mean_std
        self.register_buffer('pixel_mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('pixel_std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    # ---------------------------------------------------------------- images
    def encode(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) pixels in [0, 1] -> (B, D) normalised features; differentiable in the
        pixels (the CLIP's weights stay frozen)."""
        return self.clip.encode_image((pixels - self.pixel_mean) / self.pixel_std).float()

    def extract_feat(self, inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return self.encode(inputs)

    def needs_feature_init(self) -> bool:
        return not bool(self.prototypes.initialised)

    def init_from_features(self, feats: Tensor, labels: Tensor) -> None:
        self.prototypes.set_from_features(feats, labels)

    def _prototype_statistics(self) -> tuple[Tensor, Tensor]:
        if self.needs_feature_init():
            raise RuntimeError('SADA\'s prototypes are not set: add '
                               "dict(type='mmext.InitFromTrainFeaturesHook', rounds=2) to "
                               'custom_hooks, or load a checkpoint that holds them')
        mean, std = self.prototypes.statistics()
        seen = torch.tensor(self.seen_classes, device=mean.device)
        return mean[seen], std[seen]

    # ---------------------------------------------------------------- logits
    def seen_logits(self, feats, data_samples=None):
        """Evaluation: calibrated features against all prompts."""
        proto_mean, _ = self._prototype_statistics()
        mean, var = self.class_distribution()
        return self.distribution_logits(calibrate(feats, proto_mean, self.calibration),
                                        mean, var), {}

    def _adapter_maps(self, views: list[Tensor]) -> Tensor:
        if len(self.adapters) == 1:
            return self.adapters[0](torch.cat(views))
        if len(views) != len(self.adapters):
            raise ValueError(f'{len(views)} views for {len(self.adapters)} per-view adapters; '
                             'set num_views to the pipeline\'s view count')
        return torch.cat([adapter(v) for adapter, v in zip(self.adapters, views)])

    def loss(self, inputs, data_samples) -> dict:
        views = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        pixels = torch.cat(views)  # (V * B, 3, H, W)
        targets = self._targets(data_samples).repeat(len(views))
        mean_t, var_t = self.class_distribution()  # sampled prompts, with gradients
        proto_mean, proto_std = self._prototype_statistics()

        def logits_of(feats, text_mean, text_var, protos=proto_mean) -> Tensor:
            feats = calibrate(feats, protos, self.calibration, labels=targets)
            return self.distribution_logits(feats, text_mean, text_var)

        losses = dict(loss_cls=F.cross_entropy(
            logits_of(self.extract_feat(pixels), mean_t, var_t), targets))
        if self.attack is not None:
            keep = self._adapter_maps(views)  # (V * B, 1, H, W)
            fixed = (mean_t.detach(), var_t.detach(), proto_mean.detach())
            delta = selective_perturbation(
                lambda x: F.cross_entropy(logits_of(self.encode(x), *fixed), targets),
                pixels, keep, **self.attack)
            attacked = apply_perturbation(pixels, keep, delta)
            losses['loss_adv'] = F.cross_entropy(logits_of(self.encode(attacked), mean_t, var_t),
                                                 targets)
            losses['loss_area'] = self.area_prior(keep)
        if self.orthogonality_loss is not None:
            losses['loss_orth'] = self.orthogonality_loss(
                encode_contexts_alone(self.clip.text_tower, self.prompts.context))
        if self.emd_loss is not None:
            losses['loss_emd'] = self.emd_loss(proto_mean, proto_std, mean_t,
                                               var_t.clamp_min(1e-12).sqrt())
        return losses
