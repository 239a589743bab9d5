"""``model=dict(type='mmext.QuantizedModel', model=<any model config>, quant=<ModuleSwap config>)``.

A registered builder function, not a wrapper: it builds the model, converts it with the module
swap and returns the converted model itself. Runners, ``tools/test.py`` and OpenMMLab's
analysis tools therefore see the usual detector / segmentor / classifier, checkpoints keep the
usual keys (plus the quantizers' state), and a float checkpoint loads into it (``load_from``;
the quantizers' keys are reported missing and initialise from the first batches).
"""
from __future__ import annotations

from torch import nn

from mmext.registry import MODELS, QUANTIZERS


@MODELS.register_module()
def QuantizedModel(model: dict, quant: dict,  # noqa: N802 (a config type name)
                   data_preprocessor: dict | None = None) -> nn.Module:
    """Build ``model`` in the current default scope and convert it with ``quant``.

    ``data_preprocessor``: the config's top-level one, which mmengine's Runner hands to the
    outer model config (mmpretrain's configs keep it there); ``model``'s own one comes first.
    """
    if data_preprocessor is not None:
        model = dict(model)
        model.setdefault('data_preprocessor', data_preprocessor)
    built = MODELS.build(model)
    return QUANTIZERS.build(quant)(built)
