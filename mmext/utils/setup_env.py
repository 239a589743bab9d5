"""Process set-up shared by the tools: safe checkpoint loading and distributed runs on the CPU."""
from __future__ import annotations

import os
import pickle

import torch
from mmengine.config import Config

from .malloc import malloc_cfg_from


def _history_buffer_getattr(obj, name: str):
    """Stands in for ``builtins.getattr`` while a checkpoint is unpickled with ``weights_only``.

    Python's pickle protocol 2 (torch.save's default) stores a method such as
    ``HistoryBuffer.min`` as ``getattr(HistoryBuffer, 'min')``; mmengine's message hub holds a
    few of those. Allowing the real ``getattr`` would let a crafted file reach any method of any
    allowed class, so only HistoryBuffer's statistics methods resolve.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed = {'min', 'max', 'current', 'mean'} | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'the checkpoint asks for getattr({obj!r}, {name!r}); weights_only loading allows only '
        'the statistics methods of mmengine\'s HistoryBuffer. Load it with weights_only=False '
        'only if you trust the file.')


def _checkpoint_globals() -> list:
    """The classes and functions that mmengine's own checkpoints pickle beside the tensors.

    A runner checkpoint holds the message hub (``HistoryBuffer`` objects of numpy arrays and
    scalars, with references to their statistics methods) and optimizer / scheduler states.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = np._core.multiarray
    allowed = [HistoryBuffer, np.ndarray, np.dtype,
               (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
               (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
               (multiarray.scalar, 'numpy._core.multiarray.scalar'),
               (multiarray.scalar, 'numpy.core.multiarray.scalar'),
               (_history_buffer_getattr, 'builtins.getattr')]
    # numpy >= 1.25 pickles dtypes as instances of numpy.dtypes.*DType classes.
    allowed += [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType')]
    return allowed


def register_checkpoint_safe_globals() -> None:
    """Let ``torch.load(weights_only=True)`` (torch's default) read mmengine checkpoints.

    mmengine 0.10 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
    ``weights_only=True``, which refuses the few mmengine and numpy objects in a runner
    checkpoint. Allowing exactly these is narrower than ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``,
    which turns the protection off for every file.
    """
    torch.serialization.add_safe_globals(_checkpoint_globals())


def load_tool_config(config: str, cfg_options: dict | None = None, work_dir: str | None = None,
                     launcher: str = 'none') -> Config:
    """The config as ``tools/train.py`` and ``tools/test.py`` use it (mmdet's rules).

    ``cfg_options`` are merged in; the work dir is ``work_dir``, else the config's, else
    ``./work_dirs/<config name>``; ``mmext.CheckpointFitHook`` and ``mmext.RNGStateHook`` are
    added to the custom hooks. A malformed ``env_cfg.malloc_cfg`` (:mod:`mmext.utils.malloc`)
    is refused here.
    """
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    malloc_cfg_from(cfg.get('env_cfg'))  # a malformed env_cfg.malloc_cfg stops here, named
    # a checkpoint of another architecture stops the run instead of loading in part; the
    # generators' states travel with the checkpoints, so that a resumed run continues the same
    hooks = list(cfg.get('custom_hooks', []))

    def hook_name(hook) -> str:     # a config dict, a hook object or a class
        kind = hook.get('type', '') if isinstance(hook, dict) else hook
        kind = kind if isinstance(kind, (str, type)) else type(kind)
        return kind if isinstance(kind, str) else kind.__name__

    for name in ('CheckpointFitHook', 'RNGStateHook'):
        if not any(hook_name(h).endswith(name) for h in hooks):
            hooks.append(dict(type=f'mmext.{name}'))
    cfg.custom_hooks = hooks
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = os.path.join('./work_dirs', os.path.splitext(os.path.basename(config))[0])
    return cfg


def prepare_distributed(cfg: Config, launcher: str) -> None:
    """Make ``launcher`` runs work on machines without a GPU (gloo over CPU processes).

    mmengine's PyTorch launcher calls ``torch.cuda.set_device`` and wraps the model in DDP with
    ``device_ids=[LOCAL_RANK]``; both fail without CUDA. Here the process group is started with
    gloo before the runner looks (it then skips its own start) and DDP gets ``device_ids=None``.
    With a GPU nothing changes.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f"on a machine without a GPU only --launcher pytorch (torchrun) is "
                         f"supported, got {launcher!r}")
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def finish_distributed() -> None:
    """End a distributed run cleanly: every rank waits for the others, then the process group
    is destroyed and its threads joined before the interpreter exits.

    Call it after the last reference to the runner is dropped (``del runner``). The runner's DDP
    wrapper holds the process group, and the runner sits in reference cycles, so without a
    garbage collection here gloo's worker threads would outlive ``destroy_process_group`` and be
    torn down during interpreter shutdown, where a rank can abort ("terminate called without an
    active exception") after a run that succeeded. A no-op when no process group is running.
    """
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        gc.collect()        # frees the DDP wrapper and its reducer: the group's last holders
        dist.destroy_process_group()


def dump_predictions(runner, cfg: Config, out: str) -> None:
    """Append the metric that pickles every prediction to ``out`` (mmdet's detection dump for
    mmdet configs, mmengine's otherwise), as ``tools/test.py --out`` does."""
    if cfg.get('default_scope') == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
    else:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
