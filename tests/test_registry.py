from importlib import import_module

import pytest
from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import WEIGHT_INITIALIZERS as ROOT_INITIALIZERS
from mmengine.registry import DefaultScope

import mmext
from mmext import registry


def test_registries_are_scoped_children_of_mmengine_roots():
    for child, root in ((registry.MODELS, ROOT_MODELS), (registry.DATASETS, ROOT_DATASETS),
                        (registry.WEIGHT_INITIALIZERS, ROOT_INITIALIZERS)):
        assert child.scope == 'mmext'
        assert child.parent is root
        assert root.children['mmext'] is child
    for name in ('HOOKS', 'LOOPS', 'METRICS', 'TRANSFORMS', 'OPTIM_WRAPPERS', 'PARAM_SCHEDULERS',
                 'EVALUATOR', 'VISUALIZERS', 'RUNNERS', 'TASK_UTILS'):
        assert getattr(registry, name).scope == 'mmext', name
    assert registry.QUANTIZERS.scope == 'mmext' and registry.QUANTIZERS.parent is None


@pytest.mark.parametrize('library', ['mmdet', 'mmseg', 'mmpretrain'])
def test_mmext_names_resolve_under_each_library_scope(library):
    from mmext.datasets import FashionMNIST, FashionScenesDataset
    from mmext.models import TorchvisionPretrainedInit
    lib_registry = import_module(f'{library}.registry')
    with DefaultScope.overwrite_default_scope(library):
        assert lib_registry.DATASETS.get('mmext.FashionMNIST') is FashionMNIST
        assert lib_registry.DATASETS.get('mmext.FashionScenesDataset') is FashionScenesDataset
        assert ROOT_INITIALIZERS.get('mmext.TorchvisionPretrained') is TorchvisionPretrainedInit
        # The library's own names are untouched by mmext's.
        assert lib_registry.MODELS.get('ResNet').__module__.startswith(library)


def test_unknown_mmext_type_names_the_type_and_registry():
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        with pytest.raises(KeyError, match=r'mmext.NoSuchDetector is not in the \w+::model registry. Please check'):
            MODELS.build(dict(type='mmext.NoSuchDetector'))


def test_register_all_modules_imports_the_components():
    mmext.register_all_modules()
    assert 'FashionScenesSegDataset' in registry.DATASETS.module_dict
    assert 'TorchvisionPretrained' in registry.WEIGHT_INITIALIZERS.module_dict
