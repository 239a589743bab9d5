"""RNGStateHook: an iteration-based run resumed from a middle checkpoint draws the same random
data and dropout as the run it continues, with validation after every checkpoint (the
epoch-based case, with SIGKILL, is in tests/test_resume.py)."""
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset


class RandomItems(Dataset):
    """Each item is drawn from NumPy's and torch's global generators when loaded, as
    augmentations are; torch's is also the one dropout and a data iterator's seed draw from,
    so the order of loading, training and validation matters."""

    def __len__(self):
        return 64

    def __getitem__(self, i):
        return dict(inputs=torch.from_numpy(np.random.randn(4).astype(np.float32)) + torch.rand(4))


class Net(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc, self.drop = nn.Linear(4, 3), nn.Dropout(0.5)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.drop(self.fc(inputs))
        return {'loss': out.square().mean()} if mode == 'loss' else out


class MeanOutput(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.append(float(torch.stack(list(data_samples)).mean()))

    def compute_metrics(self, results):
        return dict(mean=float(np.mean(results)))


def _loader():
    return dict(dataset=RandomItems(), batch_size=4, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=True),
                collate_fn=dict(type='default_collate'))


def _train(work, max_iters, resume=False):
    torch.manual_seed(0)                              # the same initial weights each time
    runner = Runner(
        model=Net(), work_dir=str(work), resume=resume,
        train_dataloader=_loader(), train_cfg=dict(by_epoch=False, max_iters=max_iters,
                                                   val_interval=1),
        val_dataloader=_loader(), val_cfg=dict(), val_evaluator=[MeanOutput()],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='mmext.RNGStateHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                                           max_keep_ckpts=-1)),
        randomness=dict(seed=0), experiment_name=work.name, default_scope='mmext')
    runner.train()
    return runner.model.state_dict()


def test_an_iteration_based_run_resumed_in_the_middle_ends_the_same(tmp_path):
    whole = _train(tmp_path / 'whole', 5)
    _train(tmp_path / 'cut', 2)                       # stops after iteration 2, as a kill would
    resumed = _train(tmp_path / 'cut', 5, resume=True)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    saved = torch.load(tmp_path / 'cut' / 'iter_2.pth', weights_only=False)
    assert set(saved['mmext_rng_state']) >= {'python', 'numpy', 'torch'}
