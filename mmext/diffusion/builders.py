"""diffusers models and schedulers built from configs (spec 1.5, mmagic's pattern)::

    unet=dict(type='mmext.Diffusers', cls='UNet2DModel',
              from_config=dict(sample_size=32, in_channels=1, ...))
    unet=dict(type='mmext.Diffusers', cls='UNet2DConditionModel',
              from_pretrained='checkpoints/ldm', subfolder='unet')     # a local folder
    scheduler=dict(type='mmext.DiffusersScheduler', cls='DDIMScheduler',
                   from_config=dict(num_train_timesteps=1000, beta_schedule='scaled_linear'))

Both return the diffusers object itself (no wrapper), so its methods, config and state-dict keys
are diffusers'. ``from_pretrained`` reads local folders only: this project never downloads.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from mmext.registry import MODELS


def _diffusers_class(name: str, base_name: str):
    import diffusers
    base = getattr(diffusers, base_name)
    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        known = sorted(n for n in dir(diffusers)
                       if isinstance(getattr(diffusers, n, None), type)
                       and issubclass(getattr(diffusers, n), base))
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
        raise ValueError(f'cls={name!r} is not a diffusers {base_name} in diffusers '
                         f'{diffusers.__version__} ({len(known)} are); closest: '
                         f'{", ".join(close) or "none"}')
    return cls


def _load(cls, from_config: dict | None, from_pretrained: str | None, subfolder: str | None,
          kwargs: dict, what: str):
    if (from_config is None) == (from_pretrained is None):
        raise ValueError(f'{what} {cls.__name__}: give exactly one of from_config=dict(...) '
                         'and from_pretrained=<local folder>')
    if from_config is not None:
        return cls.from_config(dict(from_config, **kwargs))
    folder = Path(from_pretrained) / (subfolder or '')
    if not (folder / 'config.json').is_file() and not (
            folder / 'scheduler_config.json').is_file():
        raise FileNotFoundError(
            f'{what} {cls.__name__}: no config.json or scheduler_config.json in {folder}. '
            'from_pretrained takes a local folder in the diffusers layout (what '
            '`save_pretrained` writes); CompVis checkpoints convert with '
            'tools/model_converters/ldm_to_diffusers.py')
    return cls.from_pretrained(from_pretrained, subfolder=subfolder, local_files_only=True,
                               **kwargs)


@MODELS.register_module(name='Diffusers')
def build_diffusers_model(cls: str, from_config: dict | None = None,
                          from_pretrained: str | None = None, subfolder: str | None = None,
                          **kwargs):
    """A diffusers model (``ModelMixin``: ``UNet2DModel``, ``UNet2DConditionModel``,
    ``ControlNetModel``, ``VQModel``, ...) from ``from_config`` or a local ``from_pretrained``
    folder; ``kwargs`` override config entries."""
    return _load(_diffusers_class(cls, 'ModelMixin'), from_config, from_pretrained, subfolder,
                 kwargs, 'model')


@MODELS.register_module(name='DiffusersScheduler')
def build_diffusers_scheduler(cls: str, from_config: dict | None = None,
                              from_pretrained: str | None = None, subfolder: str | None = None,
                              **kwargs):
    """A diffusers noise scheduler (``DDPMScheduler``, ``DDIMScheduler``, ``PNDMScheduler``,
    ...) from ``from_config`` or a local folder; ``kwargs`` override config entries."""
    return _load(_diffusers_class(cls, 'SchedulerMixin'), from_config, from_pretrained,
                 subfolder, kwargs, 'scheduler')
