"""A frozen real-valued teacher beside a trained student.

:class:`TeacherStudentModel` is the base of the distillers (Q-DETR, Bi-ViT): it holds the
``student`` and builds the teacher from ``dict(config=..., checkpoint=...)`` on first use, so
that testing, ``tools/test.py`` and the OpenMMLab analysis tools never need the teacher's files.
The teacher is kept out of the module tree (no parameters in the optimizer, no keys in
checkpoints, nothing for DDP to wrap), is in ``eval()`` for good and has ``requires_grad=False``.
Checkpoints hold the student's own keys, without a ``student.`` prefix: a float checkpoint of
the student's architecture loads for quantization-aware training (``load_from``), and a
distiller's checkpoint is an ordinary model's.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint
from torch import nn

from mmext.registry import MODELS

STUDENT = 'student.'


def check_teacher_cfg(teacher: dict | None, owner: str) -> None:
    """``teacher`` must be None or hold ``config`` and ``checkpoint``."""
    if teacher is not None and not (isinstance(teacher, dict)
                                    and {'config', 'checkpoint'} <= set(teacher)):
        raise ValueError(f'{owner} teacher needs dict(config=<teacher config file or dict>, '
                         f'checkpoint=<its trained checkpoint>), got {teacher}')


def load_config(config: str | dict) -> Config:
    """A config file, a package config (``'mmdet::detr/...py'``) or a dict, as a Config."""
    if isinstance(config, str):
        return get_config(config) if '::' in config else Config.fromfile(config)
    return Config(copy.deepcopy(dict(config)))


def build_frozen_teacher(teacher: dict, default_scope: str) -> nn.Module:
    """Build the model of ``teacher['config']`` (its ``model`` field, or the dict itself), load
    ``teacher['checkpoint']`` strictly, put it in eval mode and freeze it. Missing files and a
    checkpoint that does not fit the config raise errors that say so."""
    config = teacher['config']
    if isinstance(config, str) and '::' not in config and not Path(config).is_file():
        raise FileNotFoundError(f'teacher config {config} does not exist')
    if not Path(teacher['checkpoint']).is_file():
        raise FileNotFoundError(
            f"teacher checkpoint {teacher['checkpoint']} does not exist: train the real-valued "
            'teacher first (its config is model.teacher.config) or point '
            'model.teacher.checkpoint at it')
    cfg = load_config(config)
    model_cfg = cfg.get('model', cfg)
    if 'model' in cfg and 'data_preprocessor' in cfg:  # mmpretrain keeps it at the top level
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg.backbone.init_cfg = None  # the checkpoint has every weight
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', default_scope)):
        model = MODELS.build(model_cfg)
    try:
        load_checkpoint(model, teacher['checkpoint'], map_location='cpu', strict=True,
                        logger='silent')
    except RuntimeError as error:
        raise ValueError(f"teacher checkpoint {teacher['checkpoint']} does not fit the teacher "
                         f'config: {str(error)[:600]}') from error
    model.eval()
    model.requires_grad_(False)
    return model


class TeacherStudentModel(BaseModel):
    """A student model and a lazily built frozen teacher.

    Args:
        student: the built student (it brings its data preprocessor).
        teacher: ``dict(config=..., checkpoint=...)`` or None (no distillation).
        default_scope: registry scope of the teacher's config when it names none.

    Subclasses implement ``loss`` and may override :meth:`prepare_teacher` (e.g. to attach
    recorders). ``forward`` in 'tensor' and 'predict' modes is the student's.
    """

    def __init__(self, student: nn.Module, teacher: dict | None, default_scope: str,
                 init_cfg: dict | None = None):
        check_teacher_cfg(teacher, type(self).__name__)
        super().__init__(data_preprocessor=student.data_preprocessor, init_cfg=init_cfg)
        self.student = student
        self.teacher_cfg = teacher
        self.teacher_scope = default_scope
        self._teacher: list[nn.Module] = []  # built on first use, kept out of the module tree
        self._register_state_dict_hook(_strip_student_prefix)
        self._register_load_state_dict_pre_hook(_add_student_prefix)

    def prepare_teacher(self, teacher: nn.Module) -> nn.Module:
        """Called once on the built teacher, before it is frozen for good; returns it."""
        return teacher

    @property
    def teacher(self) -> nn.Module:
        """The frozen real-valued teacher, built and loaded on first use."""
        if self.teacher_cfg is None:
            raise RuntimeError(f'this {type(self).__name__} has no teacher (model.teacher=None)')
        if not self._teacher:
            # The build's random initialisation (overwritten by the checkpoint) must not draw
            # from torch's generator: the teacher is built at the first training step, which
            # for a resumed run comes after its generators were set back (resume would
            # otherwise shift every later dropout mask and augmentation).
            with torch.random.fork_rng(devices=[]):
                teacher = self.prepare_teacher(
                    build_frozen_teacher(self.teacher_cfg, self.teacher_scope))
            teacher.eval()  # again: prepare_teacher may have added modules
            teacher.requires_grad_(False)
            student_mean = getattr(self.data_preprocessor, 'mean', None)
            mean = getattr(teacher.data_preprocessor, 'mean', None)
            if mean is not None and student_mean is not None and not torch.allclose(
                    mean.cpu(), student_mean.cpu()):
                raise ValueError('the teacher normalises images differently from the student '
                                 '(data_preprocessor mean); both see the same inputs')
            self._teacher.append(teacher.to(next(self.student.parameters()).device))
        return self._teacher[0]

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self._teacher:
            self._teacher[0]._apply(fn, *args, **kwargs)
        return self

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.student(inputs, data_samples, mode=mode)

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        raise NotImplementedError


def _strip_student_prefix(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + STUDENT)]:
        state_dict[prefix + key[len(prefix + STUDENT):]] = state_dict.pop(key)
    return state_dict


def _add_student_prefix(state_dict, prefix, *args):
    for key in [k for k in state_dict if k.startswith(prefix)
                and not k.startswith(prefix + STUDENT)]:
        state_dict[prefix + STUDENT + key[len(prefix):]] = state_dict.pop(key)
