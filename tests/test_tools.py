"""The stock tools on the demo config: train, test (with --show-dir), torchrun DDP, bad input."""
import socket
import sys
from pathlib import Path

import pytest
import torch

from mmext.quant.kernels import lowbit_ops
from mmext.quant.runtime import onednn_preferred

from .conftest import DEMO_CONFIG, REPO, run_tool, scene_cfg_options

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# The training runs are seeded, so that the QAT model the low-bit runtime is compared with at
# the end is the same from run to run: unseeded, the runner drew a new seed each time, so the
# compared model (whose untrained scores tie within a few thousandths) changed, and the test
# failed once in eleven runs of it alone (which assertion was not kept). Seeded, two runs gave
# the same predictions bit for bit, the runtime's sorted scores within 0.0021 of the
# fake-quantized model's (the bound is 0.01) and 199 of its 200 detections found (100 needed).
SEEDED = ['randomness.seed=0']


def test_demo_config_trains_then_tests_through_the_stock_runner(tiny_scenes, tmp_path):
    work = tmp_path / 'work'
    train = run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', work,
                     '--cfg-options', *scene_cfg_options(tiny_scenes), *SEEDED)
    assert train.returncode == 0, train.stdout[-3000:]
    assert 'loaded 312 tensors of MobileNetV2 from torchvision://mobilenet_v2' in train.stdout
    # the config's env_cfg.malloc_cfg, applied before the runner is built (glibc here)
    assert 'glibc malloc: mmap_threshold 33554432 B, trim_threshold 268435456 B' in train.stdout
    assert 'Iter(train) [2/2]' in train.stdout and 'coco/bbox_mAP' in train.stdout
    checkpoint = work / 'iter_2.pth'
    assert checkpoint.is_file()

    # mmdet's own analysis tools on the mmext run: the loss curve (seaborn) and the dataset.
    # Scripts outside the clone find the configs' custom imports through PYTHONPATH, as in mmdet.
    import mmdet
    analysis = Path(mmdet.__file__).parent / '.mim/tools/analysis_tools'
    env = dict(MPLBACKEND='Agg', PYTHONPATH=str(REPO))
    scalars = next(work.glob('*/vis_data/scalars.json'))
    curve = run_tool(analysis / 'analyze_logs.py', 'plot_curve', scalars, '--keys', 'loss',
                     '--out', tmp_path / 'loss.png', env=env)
    assert curve.returncode == 0, curve.stdout[-2000:]
    assert (tmp_path / 'loss.png').stat().st_size > 0
    browse = run_tool(analysis / 'browse_dataset.py', DEMO_CONFIG, '--not-show', '--output-dir',
                      tmp_path / 'browse', '--cfg-options', *scene_cfg_options(tiny_scenes),
                      env=env)
    assert browse.returncode == 0, browse.stdout[-2000:]
    assert list((tmp_path / 'browse').glob('*'))

    test = run_tool('tools/test.py', DEMO_CONFIG, checkpoint, '--work-dir', tmp_path / 'test',
                    '--show-dir', tmp_path / 'shown', '--out', tmp_path / 'results.pkl',
                    '--cfg-options', *scene_cfg_options(tiny_scenes))
    assert test.returncode == 0, test.stdout[-3000:]
    assert f'Load checkpoint from {checkpoint}' in test.stdout
    assert 'coco/bbox_mAP:' in test.stdout
    assert len(list((tmp_path / 'shown').glob('*.png'))) == 8  # one drawing per val canvas
    assert (tmp_path / 'results.pkl').stat().st_size > 0
    # mmdet's result analysis on those predictions, and its FLOPs counter on the config
    matrix = run_tool(analysis / 'confusion_matrix.py', DEMO_CONFIG, tmp_path / 'results.pkl',
                      tmp_path / 'matrix', '--cfg-options', *scene_cfg_options(tiny_scenes),
                      env=env)
    assert matrix.returncode == 0, matrix.stdout[-2000:]
    assert (tmp_path / 'matrix' / 'confusion_matrix.png').is_file()
    analyzed = run_tool(analysis / 'analyze_results.py', DEMO_CONFIG, tmp_path / 'results.pkl',
                        tmp_path / 'analyzed', '--topk', '2', '--cfg-options',
                        *scene_cfg_options(tiny_scenes), env=env)
    assert analyzed.returncode == 0, analyzed.stdout[-2000:]
    assert list((tmp_path / 'analyzed' / 'good').glob('*.png'))
    flops = run_tool(analysis / 'get_flops.py', DEMO_CONFIG, '--num-images', '2', '--cfg-options',
                     *scene_cfg_options(tiny_scenes), env=env)
    assert flops.returncode == 0 and 'Flops:' in flops.stdout, flops.stdout[-2000:]

    resumed = run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', work, '--resume',
                       '--cfg-options', *scene_cfg_options(tiny_scenes, iters=3), *SEEDED)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout and 'Iter(train) [3/3]' in resumed.stdout

    # QAT: the float checkpoint loads into the 4-bit model (mmext.QuantizedModel), which trains
    # and tests through the same tools; the quantizers' state is saved with the checkpoint.
    quant_config = REPO / 'configs/demo/conditional-detr_mobilenetv2-s16_w4a4_fashion-scenes.py'
    float_checkpoint = work / 'iter_3.pth'  # (max_keep_ckpts=1 removed iter_2.pth)
    qat = run_tool('tools/train.py', quant_config, '--work-dir', tmp_path / 'qat', '--cfg-options',
                   f'load_from={float_checkpoint}', *scene_cfg_options(tiny_scenes), *SEEDED)
    assert qat.returncode == 0, qat.stdout[-3000:]
    assert 'quantized' in qat.stdout and 'swappable modules quantized' in qat.stdout
    # The quantizers' absent state is summed up in one line, not listed key by key.
    assert 'the checkpoint has no quantizer state for' in qat.stdout
    assert 'missing keys in source state_dict' not in qat.stdout
    assert 'quantizer calibration: weights' in qat.stdout  # steps set before the first iteration
    assert 'unexpected key' not in qat.stdout  # every float weight found its quantized place
    state = torch.load(tmp_path / 'qat' / 'iter_2.pth')['state_dict']
    counts = {k: int(v) for k, v in state.items() if k.endswith('a_quantizer.init_count')}
    assert counts and all(c >= 1 for c in counts.values())
    qat_test = run_tool('tools/test.py', quant_config, tmp_path / 'qat' / 'iter_2.pth',
                        '--work-dir', tmp_path / 'qat_test', '--out', tmp_path / 'fq.pkl',
                        '--cfg-options',
                        *scene_cfg_options(tiny_scenes))
    assert qat_test.returncode == 0, qat_test.stdout[-3000:]
    assert 'coco/bbox_mAP:' in qat_test.stdout
    export = run_tool('tools/deploy/export_quantized.py', quant_config,
                      tmp_path / 'qat' / 'iter_2.pth', '--out', tmp_path / 'qat.safetensors',
                      '--shape', '96', '128')
    assert export.returncode == 0, export.stdout[-3000:]
    assert 'outputs identical to the checkpoint' in export.stdout
    assert (tmp_path / 'qat.safetensors').stat().st_size < \
        (tmp_path / 'qat' / 'iter_2.pth').stat().st_size / 3

    # the export on the integer kernels against the fake-quantized checkpoint. Exact integer
    # accumulations; the float scaling after them rounds differently from the fake-quantized
    # float GEMM, which can move a value lying on a rounding boundary of the next quantizer by
    # one level, and such moves add up over the layers. After 2 iterations of QAT all 25 kept
    # scores of a canvas lie within about 0.01 of each other and two classes tie within a few
    # thousandths, so such a move can reorder a canvas's detections. (Measured: runs where 5 of
    # 8 and 1 of 8 canvases agreed to 1e-6; in two runs, with 2 torch threads and with 1, 175
    # and 167 of the 200 detections were found again, 10 and 7 of 25 on the worst canvas.)
    # The exactness of the layers is tested in tests/quant/test_runtime.py; here the scores are
    # held to 0.01 and half of the detections must come back with the same class and box.
    # Both integer GEMMs ('auto': oneDNN's int8 linear on the wide layers where this torch
    # has it; 'int_mm' everywhere) give the same sums, so the same predictions.
    import pickle
    fake = pickle.loads((tmp_path / 'fq.pkl').read_bytes())
    for backend in ('auto', 'int_mm'):
        runtime = run_tool('tools/deploy/test_runtime.py', quant_config,
                           tmp_path / 'qat.safetensors', '--work-dir', tmp_path / backend,
                           '--out', tmp_path / f'{backend}.pkl', '--int8-backend', backend,
                           '--cfg-options', *scene_cfg_options(tiny_scenes))
        assert runtime.returncode == 0, runtime.stdout[-3000:]
        summary = next(line for line in runtime.stdout.splitlines()
                       if 'low-bit runtime:' in line)
        # 100 integer GEMM layers and 17 depthwise convolutions (the depthwise kernel); the
        # 8-bit attention stays fake-quantized
        assert "'int4': 117" in summary and 'coco/bbox_mAP:' in runtime.stdout
        gemms = next(line for line in runtime.stdout.splitlines()
                     if 'integer sums computed by:' in line)
        depthwise = 'depthwise' if lowbit_ops() is not None else 'float32'
        assert f"'{depthwise}': 17" in gemms
        assert ("'onednn'" in gemms) == (backend == 'auto' and onednn_preferred()), gemms
        kept = [line for line in runtime.stdout.splitlines() if 'kept fake-quantized:' in line]
        assert kept and all('attention quantizers' in line for line in kept), kept
        kernel = pickle.loads((tmp_path / f'{backend}.pkl').read_bytes())
        assert len(fake) == len(kernel) == 8
        found = total = 0
        for a, b in zip(fake, kernel):
            a, b = a['pred_instances'], b['pred_instances']
            torch.testing.assert_close(a['scores'].sort().values, b['scores'].sort().values,
                                       rtol=0, atol=0.01, msg=lambda m, b=backend: f'{b}: {m}')
            for box, label, score in zip(a['bboxes'], a['labels'], a['scores']):
                same = ((b['labels'] == label) & ((b['bboxes'] - box).abs().amax(1) <= 1.0)
                        & ((b['scores'] - score).abs() <= 0.01))
                found += bool(same.any())
            total += len(a['scores'])
        assert found >= total / 2, (backend, found, total)
    on_onednn, on_int_mm = (pickle.loads((tmp_path / f'{b}.pkl').read_bytes())
                            for b in ('auto', 'int_mm'))
    for a, b in zip(on_onednn, on_int_mm):
        for key in ('scores', 'labels', 'bboxes'):
            assert torch.equal(a['pred_instances'][key], b['pred_instances'][key])


def _mmpretrain_options(fashion_mnist_root) -> list[str]:
    opts = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.indices=16', f'{loader}.batch_size=8',
                 f'{loader}.num_workers=0', f'{loader}.dataset.data_root={fashion_mnist_root}']
    return opts


def _mmseg_options(scenes) -> list[str]:
    opts = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={scenes}', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    return opts + ['train_dataloader.batch_size=2']


@pytest.mark.parametrize('library', ['mmpretrain', 'mmseg'])
def test_tools_run_mmpretrain_and_mmseg_configs(library, fashion_mnist_root, tiny_scenes,
                                                tmp_path):
    if library == 'mmpretrain':
        config = REPO / 'configs/demo/resnet18-cifar_1xb128-5e_fashion-mnist.py'
        options, checkpoint, metric = _mmpretrain_options(fashion_mnist_root), 'epoch_1.pth', \
            'accuracy/top1'
    else:
        config = REPO / 'configs/demo/fcn_r18-d8_1xb8-2k_fashion-scenes.py'
        options, checkpoint, metric = _mmseg_options(tiny_scenes), 'iter_2.pth', 'mIoU'
    train = run_tool('tools/train.py', config, '--work-dir', tmp_path / 'work',
                     '--cfg-options', *options)
    assert train.returncode == 0, train.stdout[-3000:]
    assert metric in train.stdout

    # Predictions as each library's analysis tools read them: mmpretrain's a pickle (--out),
    # mmseg's a folder of label PNGs (what mmseg's own test.py --out sets up). mmseg's hook
    # draws every `interval`-th image (50 by default), mmpretrain's every one.
    out, out_options = (['--out', tmp_path / 'results.pkl'], []) if library == 'mmpretrain' \
        else ([], [f'test_evaluator.output_dir={tmp_path / "pred"}',
                   'test_evaluator.keep_results=True'])
    test = run_tool('tools/test.py', config, tmp_path / 'work' / checkpoint, '--work-dir',
                    tmp_path / 'test', '--show-dir', tmp_path / 'shown', *out, '--cfg-options',
                    *options, 'default_hooks.visualization.interval=1', *out_options)
    assert test.returncode == 0, test.stdout[-3000:]
    assert metric in test.stdout
    assert list((tmp_path / 'shown').rglob('*.png')), 'no drawn predictions'
    _library_analysis_tools_run(library, config, options, tmp_path)


def _library_analysis_tools_run(library, config, options, tmp_path):
    """mmpretrain's and mmseg's own analysis tools (shipped in their packages' ``.mim/tools``)
    on an mmext config and its outputs: the loss curve and the confusion matrix; mmpretrain's
    dataset browser and best / worst predictions."""
    import importlib
    import pickle
    tools = Path(importlib.import_module(library).__file__).parent / '.mim/tools'
    env = dict(MPLBACKEND='Agg', PYTHONPATH=str(REPO))
    scalars = next((tmp_path / 'work').glob('*/vis_data/scalars.json'))

    def ok(*args):
        result = run_tool(*args, env=env)
        assert result.returncode == 0, result.stdout[-2000:]
        return result.stdout

    curve = ['plot_curve'] if library == 'mmpretrain' else []
    ok(tools / 'analysis_tools/analyze_logs.py', *curve, scalars, '--keys', 'loss', '--out',
       tmp_path / 'loss.png')
    assert (tmp_path / 'loss.png').stat().st_size > 0
    # Left out for upstream bugs that stop them on any config: mmpretrain's browse_dataset.py
    # in modes other than 'original' (matplotlib's adjust_bbox changed its signature) and
    # mmseg 1.2's (class names written into a non-contiguous array: OpenCV's layout error,
    # mmsegmentation issue 3405); mmpretrain's get_flops.py feeds 3 channels (the demo is grey);
    # mmseg 1.2's get_flops.py gives mmengine both input_shape and inputs (a ValueError).
    if library == 'mmpretrain':
        ok(tools / 'visualization/browse_dataset.py', config, '--not-show', '--output-dir',
           tmp_path / 'browse', '--mode', 'original', '--show-number', '4', '--cfg-options',
           *options)
        assert len(list((tmp_path / 'browse').glob('*'))) == 4
        ok(tools / 'analysis_tools/confusion_matrix.py', config, tmp_path / 'results.pkl',
           '--out', tmp_path / 'matrix.pkl', '--show-path', tmp_path / 'matrix.png',
           '--cfg-options', *options)
        assert (tmp_path / 'matrix.png').stat().st_size > 0
        matrix = pickle.loads((tmp_path / 'matrix.pkl').read_bytes())
        assert matrix.shape == (10, 10) and int(matrix.sum()) == 16  # the 16 test images
        ok(tools / 'analysis_tools/analyze_results.py', config, tmp_path / 'results.pkl',
           '--out-dir', tmp_path / 'analyzed', '--topk', '2', '--cfg-options', *options)
        assert list((tmp_path / 'analyzed').rglob('*.png'))
    else:
        ok(tools / 'analysis_tools/confusion_matrix.py', config, tmp_path / 'pred',
           tmp_path / 'matrix', '--cfg-options', *options)
        assert list((tmp_path / 'matrix').glob('*.png'))


def test_dist_train_runs_two_processes_on_the_cpu(tiny_scenes, tmp_path):
    result = run_tool('bash', 'tools/dist_train.sh', DEMO_CONFIG, '2', '--work-dir', tmp_path,
                      '--cfg-options', *scene_cfg_options(tiny_scenes),
                      env={'PORT': str(_free_port())})
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'Distributed training: True' in result.stdout
    assert 'GPU number: 2' in result.stdout  # mmengine's name for the world size
    assert 'Iter(train) [2/2]' in result.stdout
    assert (tmp_path / 'iter_2.pth').is_file()


def test_unknown_mmext_type_in_a_config_fails_clearly(tiny_scenes, tmp_path):
    result = run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path, '--cfg-options',
                      'model.type=mmext.NoSuchDetector', *scene_cfg_options(tiny_scenes))
    assert result.returncode != 0
    assert 'mmext.NoSuchDetector is not in the mmdet::model registry' in result.stdout


def test_missing_data_fails_clearly(tmp_path):
    result = run_tool('tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path, '--cfg-options',
                      *scene_cfg_options(tmp_path / 'no_such_set'))
    assert result.returncode != 0
    # checked before the runner is built: every missing path, the key to change, the fix
    assert 'needs data that is not here' in result.stdout
    assert 'no_such_set/annotations/instances_val.json (CocoMetric)' in result.stdout
    assert 'make data' in result.stdout and "'Production datasets'" in result.stdout


def test_missing_checkpoint_fails_clearly(tmp_path):
    result = run_tool('tools/test.py', DEMO_CONFIG, tmp_path / 'nothing.pth')
    assert result.returncode != 0
    assert 'nothing.pth does not exist' in result.stdout


def test_install_recognises_a_finished_install():
    if not (Path(sys.prefix) / '.mmext-install').is_file():
        pytest.skip('this interpreter was not set up by tools/install.sh')
    result = run_tool('bash', 'tools/install.sh', sys.prefix, timeout=120)
    assert result.returncode == 0, result.stdout
    assert 'install up to date' in result.stdout
    assert 'OpenMMLab, open_clip' not in result.stdout  # nothing was installed again
