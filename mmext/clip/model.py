"""``mmext.OpenCLIPModel``: any open_clip model as a registered, optionally frozen module."""
from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmext.registry import MODELS

from .demo_clip import local_dir_text_cfg
from .dense import dense_image_features
from .text import TextTower

DEMO_CLIP_HINT = ("the repo's demo CLIP is model_name='mmext:demo-clip' (built into the cache on "
                  'first use, or by `make demo-clip`); `python tools/clip/train_demo_clip.py '
                  '--out DIR` writes one into DIR')


WEIGHT_FILES = ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin')


def register_model_config(name: str, model_cfg: dict) -> None:
    """Make an architecture that open_clip does not ship known under ``name``. open_clip
    reads configs from files: the JSON goes to a temporary folder that is removed once read.
    Registering the same config again does nothing."""
    import open_clip
    as_read = json.loads(json.dumps(model_cfg))  # tuples become lists, as open_clip reads it
    if open_clip.get_model_config(name) == as_read:
        return
    with tempfile.TemporaryDirectory(prefix='mmext_open_clip_') as folder:
        path = Path(folder) / f'{name}.json'
        path.write_text(json.dumps(model_cfg))
        open_clip.add_model_config(path)


def _check_source(model_name: str, pretrained: str | None) -> None:
    """Fail early, naming the fix, for what open_clip would reject obscurely or slowly."""
    import open_clip
    if model_name.startswith('local-dir:'):
        folder = Path(model_name[len('local-dir:'):])
        if not (folder / 'open_clip_config.json').is_file():
            raise FileNotFoundError(
                f'no open_clip model folder at {folder} (it needs open_clip_config.json and the '
                f'weights); {DEMO_CLIP_HINT}')
        try:
            json.loads((folder / 'open_clip_config.json').read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f'{folder}/open_clip_config.json is damaged ({err}); rebuild the '
                             f'folder: {DEMO_CLIP_HINT}') from err
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise FileNotFoundError(f'{folder} has no weights (one of {WEIGHT_FILES}); '
                                    f'{DEMO_CLIP_HINT}')
        return
    if model_name.startswith('hf-hub:'):
        return
    known = open_clip.list_models()
    if model_name.replace('/', '-') not in known:
        close = difflib.get_close_matches(model_name, known, n=5)
        raise ValueError(f'unknown open_clip architecture {model_name!r}; close names: {close}. '
                         'Pass model_cfg=dict(...) to define a new one')
    if not pretrained:
        return
    looks_like_path = os.sep in pretrained or pretrained.endswith(('.pt', '.pth', '.bin',
                                                                   '.safetensors'))
    if looks_like_path:
        if not os.path.isfile(pretrained):
            raise FileNotFoundError(f'CLIP checkpoint {pretrained} does not exist; give the path '
                                    'of a saved open_clip state dict or a pretrained tag')
        return
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        raise ValueError(f'{pretrained!r} is neither a file nor a pretrained tag of '
                         f'{model_name}; its tags are {tags}')


def _resolve_mmext_model(model_name: str) -> str:
    """``'mmext:demo-clip'`` -> ``'local-dir:<cached folder>'`` (built if missing)."""
    from .demo_clip_training import DEMO_CLIP_ALIAS, ensure_demo_clip
    if model_name != DEMO_CLIP_ALIAS:
        raise ValueError(f'unknown mmext model {model_name!r}; the only one is '
                         f'{DEMO_CLIP_ALIAS!r}')
    return f'local-dir:{ensure_demo_clip()}'


@MODELS.register_module()
class OpenCLIPModel(BaseModule):
    """An open_clip image-text model (any architecture) as an mmengine module.

    Args:
        model_name: an open_clip architecture (``'ViT-B-16'``), ``'local-dir:<folder>'`` (a
            folder with ``open_clip_config.json`` and weights), ``'hf-hub:<repo>'``, or
            ``'mmext:demo-clip'``: this repo's demo CLIP, from the cache outside the clone
            (built there on first use, about 8 minutes on 2 CPU cores; see
            ``mmext/clip/demo_clip_training.py``).
        pretrained: weights for a named architecture: an open_clip tag (``'openai'``,
            ``'laion2b_s34b_b88k'``; fetched into open_clip's cache, so not offline) or the path
            of a checkpoint file. ``None``: random initialisation.
        model_cfg: define the architecture ``model_name`` (open_clip's JSON schema) instead of
            looking it up; for small test models.
        freeze: no parameter trains and the towers stay in eval mode (BatchNorm statistics too).
        pretrained_text_tower: for a Hugging Face text tower and no CLIP weights, start it from
            its own pretrained weights (``hf_model_name`` must then be a local folder offline).

    Shapes: ``encode_image`` (B, 3, H, W) -> (B, D); ``encode_text`` C strings -> (C, D);
    ``dense_features`` (B, 3, H, W) -> dense (B, D, h, w), global (B, D).
    """

    def __init__(self, model_name: str, pretrained: str | None = None,
                 model_cfg: dict | None = None, freeze: bool = True,
                 pretrained_text_tower: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        import open_clip
        if model_cfg is not None:
            register_model_config(model_name, model_cfg)
        if model_name.startswith('mmext:'):
            model_name = _resolve_mmext_model(model_name)
        _check_source(model_name, pretrained)
        overrides = {}
        if model_name.startswith('local-dir:'):
            text_cfg = local_dir_text_cfg(model_name[len('local-dir:'):])
            if text_cfg is not None:
                overrides['text_cfg'] = text_cfg
        try:
            self.clip = open_clip.create_model(
                model_name, pretrained=pretrained, pretrained_image=False,
                pretrained_text=pretrained_text_tower, **overrides)
        except Exception as err:
            if pretrained and 'download' in str(err).lower():
                raise RuntimeError(
                    f'could not fetch the {model_name} weights {pretrained!r} (offline?). Put '
                    'them into open_clip\'s cache on a machine with internet, or download the '
                    'checkpoint and pass its path as pretrained=') from err
            if model_name.startswith('local-dir:'):
                raise RuntimeError(
                    f'could not load the open_clip folder {model_name[len("local-dir:"):]} '
                    f'({type(err).__name__}: {err}); it is damaged or from another '
                    f'architecture. {DEMO_CLIP_HINT}') from err
            raise
        self.model_name = model_name
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.frozen = freeze
        if freeze:
            self.clip.requires_grad_(False)
            self.clip.eval()

    # ---------------------------------------------------------------- basics
    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.clip.eval()
        return self

    @property
    def text_tower(self) -> TextTower:
        """Token-level access to the text encoder (built on demand, holds no parameters)."""
        return TextTower(self.clip, self.tokenizer)

    @property
    def embed_dim(self) -> int:
        """D, the width of the joint image-text space."""
        if not hasattr(self, '_embed_dim'):
            with torch.no_grad():
                self._embed_dim = int(self.encode_text(['a']).shape[-1])
        return self._embed_dim

    @property
    def logit_scale(self) -> Tensor:
        """exp of the learned temperature (100 for the OpenAI models)."""
        return self.clip.logit_scale.exp()

    @property
    def image_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Normalisation the image tower was trained with, in [0, 1] units."""
        cfg = getattr(self.clip.visual, 'preprocess_cfg', {}) or {}
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
        return tuple(cfg.get('mean', OPENAI_DATASET_MEAN)), tuple(cfg.get('std', OPENAI_DATASET_STD))

    # -------------------------------------------------------------- encoders
    def tokenize(self, texts: Sequence[str]) -> Tensor:
        device = next(self.clip.parameters()).device
        return self.tokenizer(list(texts)).to(device)

    def encode_image(self, images: Tensor, normalize: bool = True) -> Tensor:
        """(B, 3, H, W) normalised images -> (B, D)."""
        return self.clip.encode_image(images, normalize=normalize)

    def encode_text(self, texts: Sequence[str] | Tensor, normalize: bool = True) -> Tensor:
        """C strings (or (C, L) token ids) -> (C, D)."""
        tokens = texts if isinstance(texts, Tensor) else self.tokenize(texts)
        return self.clip.encode_text(tokens, normalize=normalize)

    def dense_features(self, images: Tensor, normalize: bool = True) -> tuple[Tensor, Tensor]:
        """Per-pixel and global joint-space features: (B, D, h, w), (B, D)."""
        dense, pooled = dense_image_features(self.clip.visual, images)
        if normalize:
            dense, pooled = F.normalize(dense, dim=1), F.normalize(pooled, dim=-1)
        return dense, pooled

    def zero_shot_weights(self, class_names: Sequence[str],
                          templates: Sequence[str] = ('a photo of a {}.', )) -> Tensor:
        """Classifier weights (C, D): per class, the normalised mean of its normalised template
        embeddings (CLIP's prompt ensembling, through open_clip's own builder)."""
        from open_clip import build_zero_shot_classifier
        templates = [t.format if isinstance(t, str) else t for t in templates]
        device = next(self.clip.parameters()).device
        weights = build_zero_shot_classifier(self.clip, self.tokenizer, list(class_names),
                                             templates, device=device)
        return weights.T
