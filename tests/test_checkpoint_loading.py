import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import mmext  # noqa: F401  (registers the safe globals)


def test_message_hub_state_loads_with_weights_only(tmp_path):
    hub = MessageHub.get_instance('test_checkpoint_loading')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float64(0.5))
    path = tmp_path / 'ckpt.pth'
    torch.save({'message_hub': hub.state_dict(), 'state_dict': {'w': torch.ones(2)}}, path)
    loaded = torch.load(path)  # torch's default: weights_only=True
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == pytest.approx(1.0)


class _Crafted:
    """Pickles as getattr(np.ndarray, 'tofile'): a path to writing arbitrary files."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_other_getattr_calls_stay_refused(tmp_path):
    path = tmp_path / 'crafted.pth'
    torch.save({'x': _Crafted()}, path)
    with pytest.raises(pickle.UnpicklingError, match='allows only'):
        torch.load(path)
