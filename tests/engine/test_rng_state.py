"""RNGStateHook: an iteration-based run resumed from a middle checkpoint draws the same random
data and dropout as the run it continues (the epoch-based case, with SIGKILL, is in
tests/test_resume.py)."""
import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset


class RandomItems(Dataset):
    """Each item is drawn from NumPy's global generator when loaded, as augmentations are."""

    def __len__(self):
        return 64

    def __getitem__(self, i):
        return dict(inputs=torch.from_numpy(np.random.randn(4).astype(np.float32)))


class Net(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc, self.drop = nn.Linear(4, 3), nn.Dropout(0.5)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.drop(self.fc(inputs))
        return {'loss': out.square().mean()} if mode == 'loss' else out


def _train(work, max_iters, resume=False):
    torch.manual_seed(0)                              # the same initial weights each time
    runner = Runner(
        model=Net(), work_dir=str(work), resume=resume,
        train_dataloader=dict(dataset=RandomItems(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='mmext.RNGStateHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                                           max_keep_ckpts=-1)),
        randomness=dict(seed=0), experiment_name=work.name)
    runner.train()
    return runner.model.state_dict()


def test_an_iteration_based_run_resumed_in_the_middle_ends_the_same(tmp_path):
    whole = _train(tmp_path / 'whole', 5)
    _train(tmp_path / 'cut', 2)                       # stops after iteration 2, as a kill would
    resumed = _train(tmp_path / 'cut', 5, resume=True)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    saved = torch.load(tmp_path / 'cut' / 'iter_2.pth', weights_only=False)
    assert set(saved['mmext_rng_state']) >= {'python', 'numpy', 'torch'}
