"""The DCP-NAS search under DDP: two gloo processes on the CPU.

What is provable, and what these tests assert:
- after a few search iterations both processes hold identical weights, alphas and psi (bit
  for bit): every gradient is averaged before it is used, so every update is the same;
- with BatchNorm in eval mode (so that samples do not share statistics) an iteration of the
  two processes computes what one process computes on the union of their batches, to float64
  tolerance. That covers all four updates, the tangent, the discrepancy, the Fisher product
  (these need the global ``u`` and ``g_P`` and cannot be averaged after the fact) and psi's
  update. One process on its own half ends elsewhere, so the comparison has power. Only the
  first iteration is compared: the 1-bit child is discontinuous in float noise. A node sums
  discrete ``+-beta`` outputs under op weights, and such a sum can cancel exactly in one
  computation and be 1e-17 in the other; the next sign turns that 1e-17 into +-1;
- in train mode each process normalises with its own batch (BatchNorm's running statistics
  then differ between processes, as under plain DDP), and the parameters are still
  identical;
- ``tools/dist_train.sh`` runs the search config through the stock runner with the config's
  ``model_wrapper_cfg``.
"""
import os
import socket
from functools import partial

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapperDict
from mmpretrain.structures import DataSample

from mmext.engine import MultiOptimWrapperConstructor
from mmext.nas.search_loop import check_search_wrapper
from projects.dcpnas import DCPNAS, DCPNASDistributedDataParallel

from ..conftest import run_tool
from .test_dcpnas_tools import SEARCH, _loader_options

SUPERNET = dict(channels=4, num_cells=3, in_channels=1, num_classes=10, stem_stride=2)
STEPS = 3
BATCH = 4  # the union batch; each of the 2 processes takes half


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _model() -> DCPNAS:
    """A tiny search model in float64: in float32 the half batches and the union batch give
    float noise of ~1e-7, and the odd binarized activation that close to 0 flips its sign and
    moves the child elsewhere. (The inputs come normalised; the runner test below uses the
    config's data preprocessor.)"""
    torch.manual_seed(0)
    return DCPNAS(SUPERNET, tangent_weight=1.0, decoupled=dict(psi_lr=10.0),
                  data_preprocessor=dict(type='BaseDataPreprocessor')).double()


def _optim(model: DCPNAS) -> OptimWrapperDict:
    """SGD throughout: its update is linear in the gradient, so float noise stays small."""
    return MultiOptimWrapperConstructor(dict(
        parent=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        child=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        arch=dict(optimizer=dict(type='SGD', lr=1.0))))(model)


def _batch(step: int, which: int, part: slice = slice(None)) -> dict:
    """Batch ``step`` of the weight (which=0) or architecture (which=1) data, or a part."""
    g = torch.Generator().manual_seed(100 * step + which)
    inputs = torch.randn(BATCH, 1, 16, 16, generator=g, dtype=torch.float64)
    samples = [DataSample().set_gt_label(int(torch.randint(10, (1, ), generator=g)))
               for _ in range(BATCH)]
    return dict(inputs=inputs[part], data_samples=samples[part])


def _search(train_step, part: slice = slice(None), steps: int = STEPS) -> None:
    """``steps`` iterations of ``train_step(data)`` on ``part`` of each batch."""
    for step in range(steps):
        train_step(dict(train=_batch(step, 0, part), arch=_batch(step, 1, part)))


def _state(model: DCPNAS) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        half = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
        states = {}
        for mode, steps in (('first', 1), ('eval', STEPS), ('train', STEPS)):
            model = _model()
            wrapped = DCPNASDistributedDataParallel(model, device_ids=None,
                                                    broadcast_buffers=False)
            model.train(mode == 'train')
            _search(partial(wrapped.train_step, optim_wrapper=_optim(model)), half, steps)
            states[mode] = _state(model)
        torch.save(states, f'{out}.{rank}')
    finally:
        dist.destroy_process_group()


def _single_process(part: slice = slice(None), steps: int = 1) -> dict:
    """One process, BatchNorm in eval mode, on ``part`` of every batch."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = _model().eval()
        optim = _optim(model)
        _search(partial(model.train_step, optim_wrapper=optim), part, steps)
    finally:
        torch.set_num_threads(threads)
    return _state(model)


@pytest.fixture(scope='module')
def ddp_states(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('ddp') / 'state')
    mp.spawn(_ddp_worker, args=(_free_port(), out), nprocs=2, join=True)
    return [torch.load(f'{out}.{rank}') for rank in (0, 1)]


LEARNED = ('arch.normal', 'arch.reduce', 'decoupled.psi_normal', 'parent.stem.0.weight',
           'child.stem.0.weight', 'child.classifier.weight')


def test_two_processes_hold_identical_weights_alphas_and_psi(ddp_states):
    rank0, rank1 = ddp_states
    for mode in ('first', 'eval', 'train'):
        assert set(rank0[mode]) == set(rank1[mode])
        for key, value in rank0[mode].items():
            if mode == 'train' and key.endswith(('running_mean', 'running_var')):
                continue  # each process's own batch statistics
            torch.testing.assert_close(value, rank1[mode][key], rtol=0, atol=0,
                                       msg=f'{mode}: {key}')
    # in train mode the processes did see different data
    assert any(not torch.equal(v, rank1['train'][k]) for k, v in rank0['train'].items()
               if k.endswith('running_mean'))


def test_an_iteration_of_two_processes_is_one_process_on_the_union_of_their_batches(
        ddp_states):
    union = _single_process()
    initial = _state(_model())
    ddp = ddp_states[0]['first']
    assert set(ddp) == set(union)
    for key in union:
        torch.testing.assert_close(ddp[key], union[key], rtol=1e-9, atol=1e-12, msg=key)
    for key in LEARNED:  # the search moved them, so the comparison means something
        assert (union[key] - initial[key]).abs().max() > 1e-7, key
    # one process alone on its half ends elsewhere
    alone = _single_process(slice(0, BATCH // 2))
    assert not torch.allclose(alone['arch.normal'], union['arch.normal'], rtol=1e-4,
                              atol=1e-6)


def test_the_wrapper_and_the_loop_refuse_what_cannot_search():
    class Plain(torch.nn.Module):
        def train_step(self, data, optim_wrapper):
            return {}

    with pytest.raises(TypeError, match='takes `average`'):
        DCPNASDistributedDataParallel(Plain())
    stock = MMDistributedDataParallel.__new__(MMDistributedDataParallel)  # no process group
    with pytest.raises(TypeError, match=r"model_wrapper_cfg=dict\(type='mmext.DCPNASDistri"):
        check_search_wrapper(stock)
    check_search_wrapper(DCPNASDistributedDataParallel.__new__(DCPNASDistributedDataParallel))
    check_search_wrapper(_model())  # not wrapped: a single process


@pytest.mark.slow
def test_dist_train_runs_the_search_config_on_two_processes(fashion_mnist_root, tmp_path):
    options = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
               'model.supernet.channels=4',
               *_loader_options({'train_dataloader': 8, 'train_cfg.arch_dataloader': 8,
                                 'val_dataloader': 4})]
    run = run_tool('bash', 'tools/dist_train.sh', SEARCH, '2', '--work-dir', tmp_path,
                   '--cfg-options', *options, env={'PORT': str(_free_port())})
    assert run.returncode == 0, run.stdout[-3000:]
    assert 'Distributed training: True' in run.stdout
    assert 'GPU number: 2' in run.stdout  # mmengine's name for the world size
    # 8 images per loader, 2 processes x batch 2: 2 iterations per process
    assert 'Epoch(train) [1][2/2]' in run.stdout, run.stdout[-2000:]
    for term in ('loss_parent', 'loss_nas', 'loss_child_kl', 'discrepancy', 'accuracy/top1'):
        assert term in run.stdout, term
    assert len((tmp_path / 'genotypes.jsonl').read_text().splitlines()) == 1  # main process
    from mmext.nas import load_genotype
    assert str(load_genotype(str(tmp_path / 'genotype.py'))).startswith('Genotype(')
    state = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert set(state['optimizer']) == {'parent', 'child', 'arch'}
    assert 'arch.normal' in state['state_dict']  # saved without the wrapper's 'module.'
