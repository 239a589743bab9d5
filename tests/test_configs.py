"""Every config in configs/ parses and builds its model (no weights are loaded)."""
import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from .conftest import REPO

CONFIGS = sorted(p.relative_to(REPO) for p in (REPO / 'configs').rglob('*.py')
                 if not {'genotypes', '_base_'} & set(p.parts))  # fragments, not configs
# the genotype of configs that retrain a search's output, when that search has not run here
GENOTYPE = REPO / 'configs/dcpnas/genotypes/dcpnas_fashion-mnist_seed0.py'
# CLIPs too large to build for every config here: the tiny one stands in (A3R's ViT-bigG-14,
# 2.5 B parameters, minutes and tens of GB; AttriCLIP's ViT-L-14, 0.4 B, and SADA's RN50 in
# 99 configs, seconds each)
TOO_LARGE_TO_BUILD_HERE = ('ViT-bigG-14', 'ViT-L-14', 'RN50')


def _no_pretrained(model_cfg, tiny_clip_folder) -> None:
    clip = model_cfg.get('clip')
    if isinstance(clip, dict):  # a CLIP: random weights, or a written tiny one for local-dir
        clip.pretrained = None  # and for the demo CLIP (mmext:), which would be built otherwise
        if clip.model_name.startswith(('local-dir:', 'mmext:')) or \
                clip.model_name in TOO_LARGE_TO_BUILD_HERE:
            clip.model_name = f'local-dir:{tiny_clip_folder}'
            if 'decode_head' in model_cfg:  # MVP-SEG: the head takes the CLIP's width
                model_cfg.decode_head.in_channels = 32
    vae = model_cfg.get('vae')
    if isinstance(vae, dict) and vae.get('from_pretrained'):  # CMVDM's VQ-f4: a local folder
        model_cfg.vae = None                                    # users convert; pixel space here
    if isinstance(model_cfg.get('perceptual'), dict):   # VGG16 weights: a local file users copy
        model_cfg.perceptual = None
    if isinstance(model_cfg.get('animator'), dict):     # FADM's FOMM: the released file
        model_cfg.animator.pop('checkpoint', None)
    for key in ('model', 'detector', 'classifier'):
        if isinstance(model_cfg.get(key), dict):
            _no_pretrained(model_cfg[key], tiny_clip_folder)
    if isinstance(model_cfg.get('backbone'), dict):
        if 'init_cfg' in model_cfg.backbone:   # LeNet5 takes none
            model_cfg.backbone.init_cfg = None
        genotype = model_cfg.backbone.get('genotype')
        if isinstance(genotype, str) and genotype.startswith('work_dirs/'):
            model_cfg.backbone.genotype = str(GENOTYPE)


@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_config_builds(config, tiny_clip_folder):
    cfg = Config.fromfile(REPO / config)
    assert cfg.get('default_scope') in ('mmdet', 'mmseg', 'mmpretrain')
    _no_pretrained(cfg.model, tiny_clip_folder)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    if 'voc0712' in str(config):
        dataset = cfg.train_dataloader.dataset
        assert dataset.type == 'ConcatDataset' and len(dataset.datasets) == 2
        assert dataset.datasets[0].pipeline[-1].type == 'PackDetInputs'
        assert cfg.val_evaluator.type == 'VOCMetric'
