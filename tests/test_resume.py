"""A run killed with SIGKILL and resumed with --resume ends with the very weights of the run that
was never interrupted (CPU, fixed seed, data loading in the main process)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from .conftest import REPO, run_tool

pytestmark = pytest.mark.slow
CONFIG = REPO / 'configs/demo/resnet18-cifar_1xb128-5e_fashion-mnist.py'


def _options(root) -> list[str]:
    opts = ['train_cfg.max_epochs=4', 'train_cfg.val_interval=100', 'randomness.seed=0',
            'default_hooks.checkpoint.max_keep_ckpts=-1', 'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.indices=24', f'{loader}.batch_size=8',
                 f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
                 f'{loader}.dataset.data_root={root}']
    return opts


def _kill_after(work, epoch: int, args) -> int:
    """Start training, SIGKILL it once the checkpoint of ``epoch`` is complete."""
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.Popen([sys.executable, 'tools/train.py', *map(str, args)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        last = work / 'last_checkpoint'
        if last.is_file() and last.read_text().strip().endswith(f'epoch_{epoch}.pth'):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    return proc.wait()


def test_resume_after_sigkill_gives_the_uninterrupted_weights(fashion_mnist_root, tmp_path):
    opts = _options(fashion_mnist_root)
    whole = run_tool('tools/train.py', CONFIG, '--work-dir', tmp_path / 'whole',
                     '--cfg-options', *opts)
    assert whole.returncode == 0, whole.stdout[-3000:]

    killed = tmp_path / 'killed'
    code = _kill_after(killed, 2, [CONFIG, '--work-dir', killed, '--cfg-options', *opts])
    assert code == -signal.SIGKILL and not (killed / 'epoch_4.pth').exists()
    resumed = run_tool('tools/train.py', CONFIG, '--work-dir', killed, '--resume',
                       '--cfg-options', *opts)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert 'Auto resumed from the latest checkpoint' in resumed.stdout

    a = torch.load(tmp_path / 'whole' / 'epoch_4.pth', map_location='cpu')
    b = torch.load(killed / 'epoch_4.pth', map_location='cpu')
    assert 'mmext_rng_state' in b
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    # the optimizer's state too (SGD's momentum buffers), tensor by tensor
    sa, sb = a['optimizer']['state'], b['optimizer']['state']
    assert sa and sa.keys() == sb.keys()
    for index, state in sa.items():
        assert state.keys() == sb[index].keys()
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(sb[index][key])), key
