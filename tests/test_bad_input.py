"""The bad-input catalogue (README.md, section 'Bad input'): each kind of broken input stops with
a message that names the problem and the fix. Kinds whose check runs a whole tool are tested
where that tool is (the README's table names the test)."""
import re
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import mmext
from mmext.quant import ModuleSwap
from mmext.quant.export import export_quantized, load_quantized
from mmext.registry import MODELS

from .conftest import REPO, run_tool

GENOTYPE_OP = ("Genotype(normal=[('nope_conv', 0), ('skip_connect', 1), ('skip_connect', 0), "
               "('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1), "
               "('skip_connect', 0), ('skip_connect', 1)], normal_concat=[2, 3, 4, 5], "
               "reduce=[('max_pool_3x3', 0), ('skip_connect', 1), ('skip_connect', 0), "
               "('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1), "
               "('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2, 3, 4, 5])")


def _quantized(seed=0, initialise=True):
    torch.manual_seed(seed)
    model = ModuleSwap(w_bits=4, a_bits=4)(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 3)))
    if initialise:
        model(torch.randn(2, 8))
    return model.eval()


def _binary_conv(initialise=True):
    """A 1-bit convolution (DCP-NAS's: learnable weight scale, set by the first forward) on
    1-channel images."""
    from mmext.quant import QConv2d
    torch.manual_seed(0)
    conv = QConv2d(1, 4, 3, w_quantizer=dict(type='WeightBinarizer', learnable_scale=True,
                                             num_channels=4),
                   a_quantizer=dict(type='SignBinarizer'))
    model = nn.Sequential(conv)
    if initialise:
        model(torch.randn(1, 1, 8, 8))
    return model.eval()


def _export(tmp_path, model=None):
    path = tmp_path / 'm.safetensors'
    export_quantized(model if model is not None else _quantized(), path)
    return path


def _tampered(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file
    path = _export(tmp_path)
    with safe_open(str(path), 'pt') as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    tensors['0.bias'] += 1
    save_file(tensors, str(path), metadata=metadata)
    load_quantized(_quantized(initialise=False), path)


def _truncated_checkpoint(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'c.pth'
    torch.save({'state_dict': nn.Linear(4, 3).state_dict()}, path)
    path.write_bytes(path.read_bytes()[:200])
    _load_checkpoint(str(path))


class _Evil:
    def __reduce__(self):
        return (print, ('this would have run',))


def _crafted_checkpoint(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'c.pth'
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    _load_checkpoint(str(path))


class _Items(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.ones(4))


class _Net(BaseModel):
    def __init__(self, width=3):
        super().__init__()
        self.fc = nn.Linear(4, width)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return {'loss': self.fc(inputs).square().mean()} if mode == 'loss' else self.fc(inputs)


def _checkpoint_of_another_architecture(tmp_path):
    torch.save({'state_dict': _Net(width=5).state_dict()}, tmp_path / 'other.pth')
    Runner(model=_Net(), work_dir=str(tmp_path / 'work'), load_from=str(tmp_path / 'other.pth'),
           train_dataloader=dict(dataset=_Items(), batch_size=2, num_workers=0,
                                 sampler=dict(type='DefaultSampler', shuffle=False),
                                 collate_fn=dict(type='default_collate')),
           train_cfg=dict(by_epoch=False, max_iters=1),
           optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
           custom_hooks=[dict(type='mmext.CheckpointFitHook')], default_scope='mmext').train()


def _production_config_without_data(_):
    from mmext.utils.data_check import check_inputs
    cfg = Config.fromfile(REPO / 'configs/qdetr/r50_4bit.py')
    check_inputs(cfg, 'configs/qdetr/r50_4bit.py')


def _runtime_wrong_shape(_):
    from mmext.quant.runtime import BinaryLinear
    BinaryLinear(torch.ones(3, 70), torch.ones(3))(torch.randn(2, 71))


def _lowbit_results_exist(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / 'benchmarks'))
    import lowbit_inference
    out = tmp_path / 'r.json'
    out.write_text('{}')
    monkeypatch.setattr(sys, 'argv', ['lowbit_inference.py', '--out', str(out)])
    lowbit_inference.main()


def _malloc_cfg_too_large(tmp_path):
    from mmext.utils import load_tool_config
    config = tmp_path / 'big_mmap.py'
    config.write_text(f"_base_ = ['{REPO}/configs/demo/conditional-detr_mobilenetv2-s16_3x3l_"
                      f"20min_fashion-scenes.py']\n"
                      "env_cfg = dict(malloc_cfg=dict(mmap_threshold=64 * 2**20))\n")
    load_tool_config(str(config))


def _agcn(**kwargs):
    import projects.fadm  # noqa: F401
    return MODELS.build(dict(type='mmext.AGCN', in_channels=1, num_attributes=6, image_size=16,
                             lowpass_size=4, scales=(4, 8), channels=8, time_dim=16, **kwargs))


def _fadm_with_unknown_reference(_):
    import projects.fadm  # noqa: F401  (registers mmext.FADM, whichever test ran before)
    MODELS.build(dict(type='mmext.FADM', animator={}, agcn={}, unet={}, scheduler={},
                      reference='truth'))


def _agcn_attribute_length(_):
    x = torch.zeros(2, 1, 16, 16)
    _agcn()(x, x, torch.zeros(2, dtype=torch.long), torch.zeros(2, 5))


def _empty_class_list(_):
    from mmext.clip.classifiers import CLIPClassifier
    CLIPClassifier.set_class_names(CLIPClassifier.__new__(CLIPClassifier), [])


# kind -> (function raising on the bad input, expected error, message pattern: problem + fix)
CASES = {
    'config: unknown component type': (
        lambda _: MODELS.build(dict(type='mmext.NoSuchThing')), KeyError,
        r'mmext\.NoSuchThing is not in the mmext::model registry.*check whether'),
    'config: impossible weight bits': (
        lambda _: ModuleSwap(w_bits=9), ValueError,
        r'bit width 9 is impossible; use 1\.\.8, or 32'),
    'config: impossible activation bits': (
        lambda _: ModuleSwap(w_bits=4, a_bits=9), ValueError,
        r'a_bits: bit width 9 is impossible; use 1\.\.8, or 32'),
    'config: impossible attention bits': (
        lambda _: ModuleSwap(w_bits=4, attn_bits=0), ValueError,
        r'attn_bits: bit width 0 is impossible; use 1\.\.8'),
    'config: quantizer bits outside its range': (
        lambda _: mmext.quant.LSQQuantizer(bits=1), ValueError,
        r'does not support bits=1.*Use 2\.\.8 bits with mmext\.LSQQuantizer'),
    'config: module pattern that matches nothing': (
        lambda _: ModuleSwap(w_bits=4, skip=['nope'])(nn.Sequential(nn.Linear(2, 2))),
        ValueError, r"pattern 'nope' matches no Linear, Conv2d or attention module; the model has e\.g\. 0"),
    'config: unknown granularity': (
        lambda _: ModuleSwap(w_bits=4, w_granularity='row'), ValueError,
        r"w_granularity must be one of \('tensor', 'channel'\), got 'row'"),
    'config: unknown gradient estimator': (
        lambda _: mmext.quant.SignBinarizer(ste='foo'), ValueError,
        r"unknown ste 'foo'; choose one of"),
    'config: malformed genotype': (
        lambda _: MODELS.build(dict(type='mmext.DartsNetwork', genotype=dict(normal=[]),
                                    channels=8, num_cells=2)),
        Exception, r'a genotype must be a string like Genotype\(normal='),
    'config: genotype with an unknown operation': (
        lambda _: MODELS.build(dict(type='mmext.DartsNetwork', genotype=GENOTYPE_OP, channels=8,
                                    num_cells=2)),
        Exception, r"normal\[0\]: unknown operation 'nope_conv'; choose one of"),
    'config: genotype file missing': (
        lambda _: MODELS.build(dict(type='mmext.DartsNetwork', genotype='no/such.py',
                                    channels=8, num_cells=2)),
        Exception, r'genotype file no/such\.py does not exist; give a DARTS genotype string'),
    'config: production config without its dataset, teacher and load_from': (
        _production_config_without_data, FileNotFoundError,
        r'(?s)needs data that is not here:.*train_dataloader\.dataset\.data_root: data/coco/.*'
        r"'Production datasets'.*model\.teacher\.checkpoint: .*load_from: .*--cfg-options"),
    'CLIP: unknown architecture': (
        lambda _: MODELS.build(dict(type='mmext.OpenCLIPModel', model_name='ViT-Nope-99')),
        ValueError, r"unknown open_clip architecture 'ViT-Nope-99'; close names: \[.*\]\. "
        r"Pass model_cfg="),
    'CLIP: checkpoint file missing': (
        lambda _: MODELS.build(dict(type='mmext.OpenCLIPModel', model_name='ViT-B-16',
                                    pretrained='/no/folder/open_clip_pytorch_model.bin')),
        FileNotFoundError, r'does not exist; give the path of a saved open_clip state dict'),
    'CLIP: empty class list': (
        _empty_class_list, ValueError, r'the class list is empty: give the class names'),
    'checkpoint: another architecture': (
        _checkpoint_of_another_architecture, ValueError,
        r'does not fit the model.*fc\.weight: \(5, 4\) in the checkpoint, \(3, 4\) in the model'
        r'.*Use the config it was trained with'),
    'checkpoint: truncated file': (
        _truncated_checkpoint, RuntimeError, r'(?s)checkpoint file is corrupted.*not saved'),
    'checkpoint: crafted pickle': (
        _crafted_checkpoint, Exception,
        r'(?s)Weights only load failed.*Do it only if you got the file from a trusted source'),
    'export: changed after export': (
        _tampered, ValueError, r'changed after export.*export the checkpoint again'),
    'export: not a safetensors file': (
        lambda tmp: (tmp.joinpath('x.safetensors').write_bytes(b'\0' * 20),
                     load_quantized(_quantized(), tmp / 'x.safetensors')),
        ValueError, r'is not a readable safetensors file.*export it again'),
    'export: model of another structure': (
        lambda tmp: load_quantized(ModuleSwap(w_bits=4, a_bits=4)(nn.Sequential(
            nn.Linear(8, 8))), _export(tmp)),
        ValueError, r"does not fit this model: quantized layers only in the file \['1'\], only in "
        r"the model \[\]; build the model from the config that was"),
    'export: uninitialised quantizers': (
        lambda tmp: _export(tmp, _quantized(initialise=False)), RuntimeError,
        r'has not initialised its step yet; run the model forward once'),
    'export: uninitialised learnable binary scales': (
        lambda tmp: _export(tmp, _binary_conv(initialise=False)), RuntimeError,
        r"^0: its weight quantizer has not initialised its step yet; run the model forward"),
    'tensor: wrong input shape to a runtime layer': (
        _runtime_wrong_shape, ValueError, r'BinaryLinear expects \(\.\.\., 70\), got \(2, 71\)'),
    'tensor: attribute vector of the wrong length (FADM)': (
        _agcn_attribute_length, ValueError,
        r'attributes must be \(B, 6\) \(source minus target\), got \(2, 5\)'),
    'config: malloc threshold out of glibc\'s range': (
        _malloc_cfg_too_large, ValueError,
        r"env_cfg\.malloc_cfg\.mmap_threshold 67108864 is above glibc's limit of 33554432"),
    'config: unknown FADM reference slot': (
        _fadm_with_unknown_reference,
        ValueError, r"reference must be 'coarse' or 'driving', got 'truth'"),
    'tool: benchmark results file exists': (
        _lowbit_results_exist, SystemExit, r'exists; pass --force to replace it'),
}


@pytest.mark.parametrize('kind', list(CASES))
def test_bad_input_is_named_with_its_fix(kind, tmp_path, monkeypatch):
    function, error, pattern = CASES[kind]
    with pytest.raises(error, match=pattern):
        if function.__code__.co_argcount == 2:
            function(tmp_path, monkeypatch)
        else:
            function(tmp_path)


def test_tools_refuse_to_overwrite_checkpoints_and_exports(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    config = REPO / 'configs/demo/resnet18-cifar_1xb128-5e_fashion-mnist.py'
    train = run_tool('tools/train.py', config, '--work-dir', work)
    assert train.returncode != 0
    assert 'holds the checkpoints of an earlier run (the last:' in train.stdout
    assert '--resume to continue it, --overwrite to start again' in train.stdout

    out = tmp_path / 'model.safetensors'
    out.write_bytes(b'keep me')
    export = run_tool('tools/deploy/export_quantized.py', config, tmp_path / 'none.pth',
                      '--out', out)
    assert export.returncode != 0 and 'exists; pass --force to replace it' in export.stdout
    assert out.read_bytes() == b'keep me'


def test_export_tool_checks_one_channel_models_and_names_an_input_it_cannot_run(tmp_path):
    """The export's exactness check feeds the model images of its first convolution's channels
    (DCP-NAS's Fashion-MNIST network takes 1); an input the model cannot take (here
    --channels 3) is named with the fix, and no file is left behind."""
    from mmengine.registry import DefaultScope
    config = REPO / 'configs/dcpnas/dcpnas-retrain_1xb128-3e_fashion-mnist.py'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS as PRETRAIN_MODELS
        model = PRETRAIN_MODELS.build(Config.fromfile(config).model).eval()
    with torch.no_grad():
        model(torch.randn(2, 1, 28, 28), mode='tensor')     # sets the binary weight scales
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'dcpnas.pth')
    out = tmp_path / 'dcpnas.safetensors'
    wrong = run_tool('tools/deploy/export_quantized.py', config, tmp_path / 'dcpnas.pth',
                     '--out', out, '--channels', '3', '--shape', '28', '28')
    assert wrong.returncode != 0
    assert ('the exactness check could not run the model on a random (1, 3, 28, 28) image'
            in wrong.stdout), wrong.stdout[-2000:]
    assert 'Pass --shape H W and --channels C' in wrong.stdout
    assert not out.exists() and not list(tmp_path.glob('*.partial'))
    export = run_tool('tools/deploy/export_quantized.py', config, tmp_path / 'dcpnas.pth',
                      '--out', out, '--shape', '28', '28')
    assert export.returncode == 0, export.stdout[-2000:]
    assert "exported 80 quantized weights ({'1-bit': 80})" in export.stdout
    assert 'outputs identical to the checkpoint' in export.stdout and out.is_file()


def _coco(tmp_path, annotations, images=None, name='bad.json'):
    import json
    images = [dict(id=1, file_name='a.png', width=32, height=32)] if images is None else images
    path = tmp_path / name
    path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                    categories=[dict(id=1, name='shirt')])))
    return path


def test_coco_annotation_problems_are_named_with_their_fix(tmp_path):
    from mmext.utils.coco_check import coco_problems

    def box(i, bbox, category=1, image=1):
        return dict(id=i, image_id=image, category_id=category, bbox=bbox, area=1, iscrowd=0)

    path = _coco(tmp_path, [box(1, [2, 2, 10, 10]), box(2, [5, 5, 0, 4]), box(3, [5, 5, -2, 4]),
                            box(4, [25, 25, 10, 10]), box(5, [1, 1, 4, 4], category=7),
                            box(6, [1, 1, 4, 4], image=9)])
    problems = '\n'.join(coco_problems(path, classes=('shirt', 'shoe'), img_dir=tmp_path))
    for pattern in (
            r"classes of the config that the file does not name: \['shoe'\].*metainfo=dict",
            r'category id the file does not define: 1 \(e\.g\. ids \[5\]\); add the category',
            r'images the file does not list: 1 \(e\.g\. ids \[6\]\)',
            r'zero or negative width or height.*: 2 \(e\.g\. ids \[2, 3\]\); boxes are \[x, y,',
            r'outside their image by more than 1 pixel: 1 \(e\.g\. ids \[4\]\); clip them',
            r"image files not in .*: 1 \(e\.g\. \['a\.png'\]\); check data_prefix\.img"):
        assert re.search(pattern, problems), pattern
    sound = _coco(tmp_path, [box(1, [2, 2, 10, 10])], name='sound.json')
    (tmp_path / 'a.png').write_bytes(b'')
    assert coco_problems(sound, classes=('shirt',), img_dir=tmp_path) == []
    empty = _coco(tmp_path, [], images=[], name='empty.json')
    assert coco_problems(empty)[0].startswith('the split is empty (no images)')
    (tmp_path / 'broken.json').write_text('{"images": [')
    assert 'cannot be read as JSON' in coco_problems(tmp_path / 'broken.json')[0]


def test_check_annotations_tool_on_a_config(tiny_scenes, tmp_path):
    from .conftest import scene_cfg_options
    config = REPO / 'configs/demo/conditional-detr_mobilenetv2-s16_3x3l_20min_fashion-scenes.py'
    sound = run_tool('tools/data/check_annotations.py', config, '--cfg-options',
                     *scene_cfg_options(tiny_scenes))
    assert sound.returncode == 0, sound.stdout[-2000:]
    assert sound.stdout.count(': sound') == 3                # train, val, test
    bad = _coco(tmp_path, [dict(id=1, image_id=1, category_id=1, bbox=[0, 0, 0, 3])])
    result = run_tool('tools/data/check_annotations.py', config, '--cfg-options',
                      *scene_cfg_options(tiny_scenes), f'val_dataloader.dataset.ann_file={bad}')
    assert result.returncode == 1
    assert 'val_dataloader' in result.stdout and 'zero or negative width' in result.stdout
    assert "the file does not name: ['T-shirt/top'" in result.stdout   # the config's classes
