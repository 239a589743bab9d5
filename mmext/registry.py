"""Registries of mmext, scope ``mmext``.

Each registry is a child of mmengine's root registry of the same kind, like mmdet's, mmseg's
and mmpretrain's. A config whose ``default_scope`` is one of those libraries names an mmext
component as ``type='mmext.Name'``; mmengine then finds this child under the shared root.
``locations`` are imported lazily on the first lookup, so registering needs no explicit import
once ``mmext.registry`` itself is imported (``custom_imports=dict(imports=['mmext'])`` or the
tools in ``tools/``).

``QUANTIZERS`` is new: weight / activation quantizers and binarizers, built by the module swap.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import DefaultScope, Registry, build_from_cfg

SCOPE = 'mmext'


def _child(name: str, parent: Registry, locations: list[str]) -> Registry:
    return Registry(name, parent=parent, scope=SCOPE, locations=locations)


# Where the components of each kind live; imported on first lookup.
_ENGINE = ['mmext.engine', 'mmext.nas', 'mmext.quant']
_MODELS = ['mmext.models', 'mmext.quant', 'mmext.nas', 'mmext.distill', 'mmext.clip', 'mmext.cam',
           'mmext.diffusion']
_DATA = ['mmext.datasets']
_EVALUATION = ['mmext.evaluation', 'mmext.cam']

RUNNERS = _child('runner', MMENGINE_RUNNERS, _ENGINE)
RUNNER_CONSTRUCTORS = _child('runner constructor', MMENGINE_RUNNER_CONSTRUCTORS, _ENGINE)
LOOPS = _child('loop', MMENGINE_LOOPS, _ENGINE)
HOOKS = _child('hook', MMENGINE_HOOKS, _ENGINE)
LOG_PROCESSORS = _child('log_processor', MMENGINE_LOG_PROCESSORS, _ENGINE)
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, _ENGINE)
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS, _ENGINE)
OPTIM_WRAPPER_CONSTRUCTORS = _child(
    'optimizer wrapper constructor', MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, _ENGINE)
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, _ENGINE)

DATASETS = _child('dataset', MMENGINE_DATASETS, _DATA)
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, _DATA)
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, _DATA)

MODELS = _child('model', MMENGINE_MODELS, _MODELS)
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, _MODELS)
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS, _MODELS)
TASK_UTILS = _child('task util', MMENGINE_TASK_UTILS, _MODELS)

METRICS = _child('metric', MMENGINE_METRICS, _EVALUATION)
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, _EVALUATION)

VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, _ENGINE)
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, _ENGINE)
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, _DATA)
INFERENCERS = _child('inferencer', MMENGINE_INFERENCERS, _MODELS)



def _build_in_mmext_scope(cfg, registry, default_args=None):
    """Build from a registry without an mmengine parent while a downstream library's scope is
    the default (a quantizer built inside an mmdet model, say): look it up in mmext's scope,
    instead of failing over to it with mmengine's warning."""
    with DefaultScope.overwrite_default_scope(SCOPE):
        return build_from_cfg(cfg, registry, default_args)


# New in mmext: saliency methods (Decom-CAM and pytorch-grad-cam's baselines), under TASK_UTILS.
CAM_METHODS = Registry('cam method', parent=TASK_UTILS, scope=SCOPE, locations=['mmext.cam'])

# New in mmext: quantizers and binarizers (no mmengine parent).
QUANTIZERS = Registry('quantizer', scope=SCOPE, locations=['mmext.quant'],
                      build_func=_build_in_mmext_scope)
