"""What the Bi-ViT configs claim, read off the merged configs (``Config.fromfile``): DeiT's hard
distillation through a distillation token by default on ImageNet, the soft-KD option, Swin's
soft form, and an ablation chain in which each child adds exactly one Bi-ViT component."""
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import projects.bivit as bivit

from ..conftest import REPO

CONFIGS = REPO / 'configs/bivit'
DEIT = ('bivit_deit-tiny_4xb256-300e_in1k', 'bivit_deit-small_4xb256-300e_in1k',
        'bivit_deit-base_16xb64-300e_in1k')
SWIN = 'bivit_swin-tiny_16xb64-300e_in1k'
MINIATURE = 'bivit_vit-mini-p4_1xb128-3e_fashion-mnist'
CHAIN = ('_binary-baseline', '_scaling', '_qk-norm', '_distill', '')  # each adds one component
TEACHERS = {'deit-tiny': 'mmpretrain::deit/deit-tiny_4xb256_in1k.py',
            'deit-small': 'mmpretrain::deit/deit-small_4xb256_in1k.py',
            'deit-base': 'mmpretrain::deit/deit-base_16xb64_in1k.py',
            'swin-tiny': 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'}


def _cfg(name: str) -> Config:
    return Config.fromfile(CONFIGS / f'{name}.py')


def components(cfg: Config) -> dict:
    """The Bi-ViT components a merged config trains with."""
    model = cfg.model
    distill = model.get('distill') or {}
    head = model.classifier.head.type
    if model.get('teacher') is None:
        kd = None
    elif head == 'mmext.HardDistillationHead':
        kd = 'hard'
    else:
        kd = 'soft' if distill.get('logit') else None
    return dict(scaling=model.quant.learnable_scale, qk_norm=model.quant.qk_norm, kd=kd,
                ranking=bool(distill.get('rank')))


def _build_tiny(cfg: Config):
    """The config's model at a tiny width (2 layers of 32) and 32 x 32 images: the same
    classes as the full size, quick to build."""
    classifier = cfg.model.classifier
    classifier.backbone.arch = dict(embed_dims=32, num_layers=2, num_heads=2,
                                    feedforward_channels=64)
    classifier.backbone.img_size = 32
    classifier.backbone.init_cfg = None
    classifier.head.in_channels = 32
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmext.registry import MODELS
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('name', DEIT)
def test_imagenet_deit_defaults_to_hard_distillation_through_a_distillation_token(name):
    cfg = _cfg(name)
    model = cfg.model
    backbone, head = model.classifier.backbone, model.classifier.head
    assert model.type == 'mmext.BiViT'
    assert backbone.type == 'mmext.DistillationTokenViT'
    assert head.type == 'mmext.HardDistillationHead'
    # 0.5 CE(labels) [label smoothing 0.1] + 0.5 CE(teacher's argmax) + 1.0 L_rank
    assert head.loss.type == 'LabelSmoothLoss' and head.loss.label_smooth_val == 0.1
    assert head.loss.loss_weight == 0.5
    assert head.distill_loss == dict(type='CrossEntropyLoss', loss_weight=0.5)
    assert model.distill.get('logit') is None
    assert model.distill.rank.type == 'mmext.RankingAwareAttentionLoss'
    assert model.distill.rank.loss_weight == 1.0
    assert model.quant == dict(type='mmext.BiViTSwap', learnable_scale=True, qk_norm=True)
    # teacher and start: mmpretrain's plain (not distilled) DeiT float checkpoint
    arch = name.split('_')[1].rsplit('_', 1)[0]
    assert model.teacher.config == TEACHERS[arch] and 'distilled' not in model.teacher.config
    assert model.teacher.checkpoint == cfg.load_from == cfg.float_checkpoint
    assert re.fullmatch(rf'checkpoints/{arch}_pt-.*\.pth', cfg.load_from)
    assert 'distilled' not in cfg.load_from
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['.dist_token'] == dict(decay_mult=0.0)
    built = _build_tiny(cfg)
    assert built.hard_distillation
    assert isinstance(built.student.backbone, bivit.DistillationTokenViT)
    assert isinstance(built.student.head, bivit.HardDistillationHead)
    assert built.student.backbone.num_extra_tokens == 2
    assert len(bivit.attention_cores(built.student)) == 2
    assert built.student(torch.randn(1, 3, 32, 32), mode='tensor').shape == (1, 1000)


@pytest.mark.parametrize('name', DEIT + (MINIATURE, ))
def test_soft_kd_option_is_the_present_logit_distillation_without_the_token(name):
    cfg = _cfg(f'{name}_soft-kd')
    model = cfg.model
    assert model.classifier.backbone.type == 'VisionTransformer'
    assert model.classifier.head.type == 'VisionTransformerClsHead'
    assert model.classifier.head.loss.get('loss_weight', 1.0) == 1.0
    assert model.distill.logit == dict(type='mmext.LogitDistillationLoss', temperature=1.0,
                                       loss_weight=0.5)
    assert model.distill.rank.type == 'mmext.RankingAwareAttentionLoss'
    assert model.teacher.checkpoint == cfg.load_from
    assert components(cfg) == dict(scaling=True, qk_norm=True, kd='soft', ranking=True)


def test_swin_keeps_soft_logit_distillation():
    cfg = _cfg(SWIN)
    model = cfg.model
    assert model.classifier.backbone.type == 'SwinTransformer'
    assert model.classifier.head.type != 'mmext.HardDistillationHead'
    assert model.distill.logit.type == 'mmext.LogitDistillationLoss'
    assert model.teacher.config == TEACHERS['swin-tiny']
    assert not (CONFIGS / f'{SWIN}_soft-kd.py').exists()  # soft is Swin's only form


@pytest.mark.parametrize('stem', DEIT + (SWIN, MINIATURE))
def test_each_ablation_row_adds_exactly_one_component_to_the_previous(stem):
    kd = 'soft' if stem == SWIN else 'hard'
    expected = [dict(scaling=False, qk_norm=False, kd=None, ranking=False),
                dict(scaling=True, qk_norm=False, kd=None, ranking=False),
                dict(scaling=True, qk_norm=True, kd=None, ranking=False),
                dict(scaling=True, qk_norm=True, kd=kd, ranking=False),
                dict(scaling=True, qk_norm=True, kd=kd, ranking=True)]
    rows = [_cfg(stem + suffix) for suffix in CHAIN]
    assert [components(cfg) for cfg in rows] == expected
    # the chain is literal: each row's file inherits the previous one
    for previous, suffix in zip(CHAIN, CHAIN[1:]):
        text = (CONFIGS / f'{stem}{suffix}.py').read_text()
        assert f"_base_ = './{stem}{previous}.py'" in text
    baseline = rows[0].model
    # the paper's plain binarized transformer: no distillation token, no teacher
    assert baseline.classifier.backbone.type in ('VisionTransformer', 'SwinTransformer')
    assert baseline.get('teacher') is None and not baseline.get('distill')
    # the same schedule and start checkpoint in every row
    for cfg in rows[1:]:
        assert cfg.load_from == rows[0].load_from
        assert cfg.param_scheduler == rows[0].param_scheduler
        assert cfg.train_cfg == rows[0].train_cfg


def test_fashion_mnist_deit_tiny_distils_through_the_token_from_the_float_deit_tiny():
    cfg = _cfg('bivit_deit-tiny-p4_1xb128-20e_fashion-mnist')
    model = cfg.model
    float_cfg = Config.fromfile(CONFIGS / 'deit-tiny-p4_1xb128-20e_fashion-mnist.py').model
    backbone = dict(model.classifier.backbone)
    assert backbone.pop('type') == 'mmext.DistillationTokenViT'
    assert backbone == {k: v for k, v in float_cfg.backbone.items() if k != 'type'}
    assert model.classifier.head.type == 'mmext.HardDistillationHead'
    assert model.classifier.head.loss.loss_weight == model.classifier.head.distill_loss.loss_weight
    assert model.classifier.head.loss.label_smooth_val == float_cfg.head.loss.label_smooth_val
    assert components(cfg) == dict(scaling=True, qk_norm=True, kd='hard', ranking=True)
    assert model.teacher.checkpoint == cfg.load_from
