"""DeiT's hard distillation through a distillation token, on mmpretrain's distilled DeiT
(``L = 0.5 CE(y, z_cls) + 0.5 CE(argmax z_T, z_dist) + lambda_rank L_rank``).

- :class:`DistillationTokenViT` is mmpretrain's ``DistilledVisionTransformer`` (a class token
  and a distillation token, tokens ``[cls, dist, patches]``) that also starts from a *plain*
  ViT / DeiT checkpoint, which has no distillation token: the token, and its slot in the
  position embeddings, are filled in as copies of the class token's.
- :class:`HardDistillationHead` is mmpretrain's ``DeiTClsHead`` (a linear head on each token;
  at test time the two heads' logits are averaged) with DeiT's training loss: the class
  token's head against the labels (the head's own ``loss``), the distillation token's head
  against the teacher's argmax (``distill_loss``). A start checkpoint without a
  distillation head gets a copy of the class head.

With both copies the two tokens and the two heads agree at the start, so the averaged
prediction starts as the class head's; the different targets then pull them apart.
"""
from __future__ import annotations

import torch
from mmengine.logging import print_log
from mmpretrain.models.backbones import DistilledVisionTransformer
from mmpretrain.models.heads import DeiTClsHead
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from mmext.registry import MODELS


def add_distillation_token(state_dict: dict, prefix: str) -> bool:
    """Give a plain ViT checkpoint (``cls_token`` (1, 1, C), ``pos_embed`` (1, 1 + P, C), no
    ``dist_token``) a distillation token: ``dist_token`` a copy of ``cls_token`` and
    ``pos_embed`` (1, 2 + P, C) with the class token's position embedding repeated at
    index 1. In place; returns whether anything was added (False for a checkpoint that has a
    distillation token, or no class token to copy)."""
    cls_key, dist_key, pos_key = (prefix + k for k in ('cls_token', 'dist_token', 'pos_embed'))
    if dist_key in state_dict or cls_key not in state_dict:
        return False
    state_dict[dist_key] = state_dict[cls_key].clone()
    if pos_key in state_dict:
        pos = state_dict[pos_key]
        state_dict[pos_key] = torch.cat([pos[:, :1], pos[:, :1], pos[:, 1:]], dim=1)
    return True


@MODELS.register_module()
class DistillationTokenViT(DistilledVisionTransformer):
    """mmpretrain's ``DistilledVisionTransformer`` that loads plain ViT / DeiT checkpoints too.

    Same arguments and outputs as the parent: with ``out_type='cls_token'`` each stage gives
    ``(cls, dist)``, two (B, C) tensors. Loading a checkpoint without ``dist_token`` (e.g.
    mmpretrain's DeiT-T/S/B float checkpoints) initialises the distillation token and its
    position embedding as copies of the class token's (see :func:`add_distillation_token`);
    the parent's resizing of the position embeddings to another patch grid still applies.
    """

    def _prepare_pos_embed(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        if add_distillation_token(state_dict, prefix):
            print_log(f'{prefix}dist_token is not in the checkpoint: the distillation token '
                      'and its position embedding start as copies of the class token\'s',
                      logger='current')
        super()._prepare_pos_embed(state_dict, prefix, *args, **kwargs)


@MODELS.register_module()
class HardDistillationHead(DeiTClsHead):
    """DeiT's head pair trained with hard distillation.

    ``forward(feats)`` (test time and ``mode='tensor'``): ``(head(cls) + head_dist(dist)) / 2``,
    (B, num_classes), as DeiT predicts. ``loss(feats, data_samples, teacher_logits)``:

    - ``loss_cls``: the head's ``loss`` (e.g. label smoothing, Mixup targets) on the class
      token's logits against the labels;
    - ``loss_dist``: ``distill_loss`` on the distillation token's logits against
      ``teacher_logits.argmax(1)``, the teacher's hard labels (teacher_logits: (B, num_classes)).

    DeiT weighs both by 0.5: ``loss=dict(..., loss_weight=0.5)`` and
    ``distill_loss=dict(type='CrossEntropyLoss', loss_weight=0.5)`` in the config.

    Args:
        distill_loss: config of the distillation token's loss (mmpretrain's registry), or a
            built module.
        **kwargs: as ``DeiTClsHead`` (num_classes, in_channels, hidden_dim, loss, ...).
    """

    def __init__(self, distill_loss: dict | torch.nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.distill_loss = (distill_loss if isinstance(distill_loss, torch.nn.Module)
                             else MMPRETRAIN_MODELS.build(distill_loss))
        self.register_load_state_dict_pre_hook(HardDistillationHead._copy_class_head)

    def token_logits(self, feats) -> tuple[torch.Tensor, torch.Tensor]:
        """The class token's and the distillation token's logits, (B, num_classes) each, from
        the backbone's output (its last stage is ``(cls, dist)``)."""
        last = feats[-1]
        if not isinstance(last, (tuple, list)) or len(last) not in (2, 3):
            raise ValueError('HardDistillationHead needs the (class token, distillation token) '
                             "pair of a DistillationTokenViT with out_type='cls_token', got "
                             f'{type(last).__name__}')
        cls_token, dist_token = self.pre_logits(feats)
        return self.layers.head(cls_token), self.layers.head_dist(dist_token)

    def forward(self, feats) -> torch.Tensor:
        cls_logits, dist_logits = self.token_logits(feats)
        return (cls_logits + dist_logits) / 2

    def loss(self, feats, data_samples, teacher_logits: torch.Tensor | None = None,
             **kwargs) -> dict:
        if teacher_logits is None:
            raise ValueError('HardDistillationHead trains the distillation token on the '
                             "teacher's argmax: it needs teacher_logits (train it inside "
                             'mmext.BiViT with a teacher)')
        cls_logits, dist_logits = self.token_logits(feats)
        if teacher_logits.shape != dist_logits.shape:
            raise ValueError(f'teacher logits {tuple(teacher_logits.shape)} do not match the '
                             f'student\'s {tuple(dist_logits.shape)}: the teacher needs the '
                             'same classes')
        losses = self._get_loss(cls_logits, data_samples, **kwargs)
        losses['loss_cls'] = losses.pop('loss')
        teacher_labels = teacher_logits.detach().argmax(dim=1)
        losses['loss_dist'] = self.distill_loss(dist_logits, teacher_labels,
                                                avg_factor=dist_logits.size(0))
        return losses

    def _copy_class_head(self, state_dict: dict, prefix: str, *args) -> None:
        # torch's public pre-hook passes the module first: (module, state_dict, prefix, ...)
        """A checkpoint with the class head only (a plain ViT's): the distillation head
        starts as its copy."""
        for name in ('weight', 'bias'):
            source, target = f'{prefix}layers.head.{name}', f'{prefix}layers.head_dist.{name}'
            if source in state_dict and target not in state_dict:
                state_dict[target] = state_dict[source].clone()
                print_log(f'{target} is not in the checkpoint: copied from {source}',
                          logger='current')
