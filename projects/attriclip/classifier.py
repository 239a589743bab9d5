"""AttriCLIP's classifier: a frozen CLIP whose class prompts are picked per image."""
from __future__ import annotations

import torch
from torch import Tensor

from mmext.clip import CLIPClassifier, build_prompt_sequences, encode_contexts_alone
from mmext.registry import MODELS


@MODELS.register_module()
class AttriCLIPClassifier(CLIPClassifier):
    """Frozen CLIP encoders; an attribute word bank is all that learns.

    An image x with features ``z = f(x)`` selects the k prompts whose keys score highest
    (``I(x)``, best first); class c's text is ``[SOS] P_I1 ... P_Ik <name_c> . [EOS]``, and the
    logits are ``logit_scale * cos(z, g(text_c))`` over the seen classes. Training adds the key
    matching loss and the prompt orthogonality loss to the cross-entropy.

    Images of a batch that select the same ordered tuple share one text pass over the classes
    (the naive form runs B x S sequences; this runs U x S, U the distinct tuples). Without
    gradients (evaluation) the text features of a tuple are kept until the model switches mode or
    the seen classes change.

    Args:
        clip: ``OpenCLIPModel`` arguments (frozen).
        bank: ``AttributeWordBank`` arguments; ``key_dim`` and ``prompt_dim`` default to the
            CLIP's embedding and token widths.
        key_loss: ``KeyMatchingLoss`` config (weight 0.7 in the CIFAR script).
        orthogonality_loss: ``PromptOrthogonalityLoss`` config (0.3); ``None`` drops it.
        class_names, data_preprocessor: as :class:`mmext.clip.CLIPClassifier`.
    """

    def __init__(self, clip: dict, bank: dict | None = None,
                 key_loss: dict | None = None, orthogonality_loss: dict | None = None,
                 **kwargs):
        super().__init__(clip, **kwargs)
        tower = self.clip.text_tower
        bank = dict(type='mmext.AttributeWordBank', **dict(bank or {}))
        bank.setdefault('key_dim', self.clip.embed_dim)
        bank.setdefault('prompt_dim', tower.width)
        self.bank = MODELS.build(bank)
        self.key_loss = MODELS.build(key_loss or dict(type='mmext.KeyMatchingLoss'))
        self.orthogonality_loss = (MODELS.build(orthogonality_loss)
                                   if orthogonality_loss is not None else None)
        self._text_cache: dict = {}

    # ------------------------------------------------------------- text side
    def tuple_text_features(self, selections: Tensor) -> Tensor:
        """(U, k) distinct index tuples -> (U, S, D) text features of the seen classes."""
        tower = self.clip.text_tower
        names = self.seen_names()
        embeds, lengths = build_prompt_sequences(tower, self.bank.contexts(selections), names)
        feats = tower.encode_embeddings(embeds, lengths)  # (U * S, D), tuple-major
        return feats.reshape(len(selections), len(names), -1)

    def _cached_tuple_features(self, selections: Tensor) -> Tensor:
        seen = tuple(self.seen_classes)
        if self._text_cache.get('seen') != seen:
            self._text_cache = dict(seen=seen)
        keys = [tuple(sel) for sel in selections.tolist()]
        missing = [i for i, key in enumerate(keys) if key not in self._text_cache]
        if missing:
            for i, feat in zip(missing, self.tuple_text_features(selections[missing])):
                self._text_cache[keys[i]] = feat
        return torch.stack([self._text_cache[key] for key in keys])

    def train(self, mode: bool = True):
        """Switching mode (the runner does, around every evaluation) empties the text cache:
        the prompts change only in training."""
        self._text_cache = {}
        return super().train(mode)

    def prompt_features(self) -> Tensor:
        """(N, D): the text encoder on every prompt alone, ``[SOS] P_i [EOS]``."""
        return encode_contexts_alone(self.clip.text_tower, self.bank.prompts)

    # ------------------------------------------------------------ the logits
    def seen_logits(self, feats: Tensor, data_samples=None) -> tuple[Tensor, dict]:
        selections = self.bank.select(feats)  # (B, k)
        unique, inverse = torch.unique(selections, dim=0, return_inverse=True)
        if torch.is_grad_enabled():
            text = self.tuple_text_features(unique)
        else:
            text = self._cached_tuple_features(unique)
        logits = self.scaled_cosine(feats, text[inverse])  # (B, S)
        extra = {}
        if self.training:
            extra['loss_key'] = self.key_loss(feats, self.bank.keys, selections)
            if self.orthogonality_loss is not None:
                extra['loss_orth'] = self.orthogonality_loss(self.prompt_features())
        return logits, extra
