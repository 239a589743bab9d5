"""Load an MVP-SEG model and its test set for the analysis tools (``tools/analysis/mvpseg_*.py``)."""
from __future__ import annotations


def load_model_and_test_set(config: str, checkpoint: str | None,
                            cfg_options: dict | None = None):
    """``(model, dataset)``: the config's segmentor on the CPU with ``checkpoint`` loaded (``None``
    or ``'none'``: as built) and its test dataset, mmseg's default scope set."""
    from mmengine.config import Config
    from mmseg.apis import init_model
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = init_model(cfg, None if checkpoint in (None, 'none') else checkpoint, 'cpu')
    return model, DATASETS.build(cfg.test_dataloader.dataset)
