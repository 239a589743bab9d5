"""Two gloo processes with half the batch each against one process with the whole batch: the
4-bit ViT student (LSQ+ steps calibrated on all-reduced statistics, AdamW, warm-up) ends at the
same weights within a stated tolerance."""
import pytest
import torch

from .conftest import REPO, run_tool
from .test_tools import _free_port

pytestmark = pytest.mark.slow
STUDENT = REPO / 'configs/quant/vit-mini-p4_w4a4-attn8_1xb128-3e_fashion-mnist.py'
TOLERANCE = 1e-6   # largest weight difference after 4 iterations (measured: 1.5e-8)


def _config(tmp_path, root) -> str:
    """The student from random weights on 32 images without random augmentation (one process
    and two draw their augmentations from different generator streams)."""
    path = tmp_path / 'student.py'
    loader = (f"dict(num_workers=0, persistent_workers=False, dataset=dict(indices=32, "
              f"data_root='{root}', pipeline=[dict(type='PackInputs')]))")
    path.write_text(f"""_base_ = '{STUDENT}'
load_from = None
model = dict(quant=dict(calibration=dict(batches=2)))
train_dataloader = {loader}
val_dataloader = {loader}
test_dataloader = {loader}
train_cfg = dict(max_epochs=1, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
randomness = dict(seed=0)
optim_wrapper = dict(optimizer=dict(lr=1e-5))   # from random weights: keeps the steps positive
""")
    return str(path)


def test_two_processes_with_half_batches_match_one_process(fashion_mnist_root, tmp_path):
    config = _config(tmp_path, fashion_mnist_root)
    one = run_tool('tools/train.py', config, '--work-dir', tmp_path / 'one', '--cfg-options',
                   'train_dataloader.batch_size=8')
    assert one.returncode == 0, one.stdout[-3000:]
    two = run_tool('bash', 'tools/dist_train.sh', config, '2', '--work-dir', tmp_path / 'two',
                   '--cfg-options', 'train_dataloader.batch_size=4',
                   env={'PORT': str(_free_port())})
    assert two.returncode == 0, two.stdout[-3000:]
    assert 'Distributed training: True' in two.stdout
    assert 'Epoch(train) [1][4/4]' in one.stdout and 'Epoch(train) [1][4/4]' in two.stdout
    a = torch.load(tmp_path / 'one' / 'epoch_1.pth', map_location='cpu')['state_dict']
    b = torch.load(tmp_path / 'two' / 'epoch_1.pth', map_location='cpu')['state_dict']
    assert a.keys() == b.keys()
    steps = [k for k in a if k.endswith('quantizer.scale')]
    assert steps                                       # calibrated and trained in both
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a
                if a[k].is_floating_point())
    assert worst <= TOLERANCE, worst
