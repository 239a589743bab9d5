"""Shared by the CAM tests: the Fashion-MNIST demo classifier with a checkpoint the test writes."""
import numpy as np
import pytest
import torch
from PIL import Image

CONFIG = 'configs/demo/resnet18-cifar_1xb128-5e_fashion-mnist.py'


@pytest.fixture(scope='session')
def classifier(tmp_path_factory):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)  # no default scope left for later tests
    folder = tmp_path_factory.mktemp('vis_cam')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    checkpoint = folder / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    image = folder / 'item.png'
    pixels = np.zeros((28, 28, 3), np.uint8)
    pixels[6:22, 8:20] = 200
    Image.fromarray(pixels).save(image)
    return folder, checkpoint, image
