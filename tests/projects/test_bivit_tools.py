"""Bi-ViT configs through the stock mmpretrain runner (tools/train.py, tools/test.py)."""
import re

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from ..conftest import REPO, run_tool

BIVIT = REPO / 'configs/bivit/bivit_deit-tiny-p4_1xb128-20e_fashion-mnist.py'
FLOAT = REPO / 'configs/bivit/deit-tiny-p4_1xb128-20e_fashion-mnist.py'


def _small_run_options(iters_per_epoch: int = 2) -> list[str]:
    options = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']
    for loader, count in (('train_dataloader', 2 * iters_per_epoch), ('val_dataloader', 4),
                          ('test_dataloader', 4)):
        options += [f'{loader}.dataset.indices={count}', f'{loader}.batch_size=2',
                    f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    return options


def test_bivit_deit_tiny_distills_through_the_runner_then_tests_without_teacher(
        fashion_mnist_root, tmp_path):
    # the float (plain, no distillation token) DeiT-Tiny's checkpoint, random weights: the
    # teacher, and the student's start
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        torch.manual_seed(0)
        float_model = MODELS.build(Config.fromfile(FLOAT).model)
    teacher = tmp_path / 'float.pth'
    torch.save(dict(state_dict=float_model.state_dict(), meta=dict()), teacher)
    options = _small_run_options() + [f'model.teacher.checkpoint={teacher}',
                                      f'load_from={teacher}']
    train = run_tool('tools/train.py', BIVIT, '--work-dir', tmp_path / 'bivit',
                     '--cfg-options', *options)
    assert train.returncode == 0, train.stdout[-3000:]
    assert re.search(r'Epoch\(train\) +\[1\]\[2/2\]', train.stdout), train.stdout[-2000:]
    # DeiT's hard distillation through the distillation token, and the ranking loss
    for term in ('loss_cls', 'loss_dist', 'loss_rank', 'accuracy/top1'):
        assert term in train.stdout
    assert 'loss_logit' not in train.stdout
    # loading the plain float checkpoint: the distillation token, its position embedding and
    # its head were filled in from the class token's; only the binarizers' and qk-norms' keys
    # were missing, and no shape mismatched
    assert 'dist_token is not in the checkpoint' in train.stdout
    assert 'head_dist.weight is not in the checkpoint' in train.stdout
    missing = re.search(r'missing keys in source state_dict: (.*)', train.stdout)
    assert missing and all(('quantizer' in k or 'q_transform' in k or 'k_transform' in k)
                           for k in missing.group(1).split(', '))
    assert 'unexpected key' not in train.stdout and 'size mismatch' not in train.stdout
    checkpoint = tmp_path / 'bivit' / 'epoch_1.pth'
    # --show-dir on a classifier with a teacher: mmpretrain's drawings, and no detection-only
    # teacher | student hook (which Q-DETR's configs list and classifiers must not get)
    test = run_tool('tools/test.py', BIVIT, checkpoint, '--work-dir', tmp_path / 'test',
                    '--show-dir', tmp_path / 'shown', '--cfg-options', *_small_run_options(),
                    f"model.teacher.checkpoint={tmp_path / 'gone.pth'}")  # never built
    assert test.returncode == 0, test.stdout[-3000:]
    assert 'accuracy/top1:' in test.stdout
    assert list((tmp_path / 'shown').glob('*.png'))  # the first test image, drawn
    assert 'TeacherStudentVisualizationHook' not in test.stdout
    assert not list(tmp_path.rglob('teacher_vs_student'))


def test_ablation_diagnostics_measure_the_checkpoint_they_are_given(fashion_mnist_root, tmp_path,
                                                                    monkeypatch):
    """benchmarks/bivit_ablation.py's Kendall tau and gradient norms come from the student
    checkpoint it is handed: two students give two values, the same one twice the same."""
    import importlib
    import sys
    monkeypatch.syspath_prepend(str(REPO / 'benchmarks'))
    monkeypatch.setenv('MMEXT_FASHION_MNIST', str(fashion_mnist_root))
    ablation = importlib.import_module('bivit_ablation')
    def current_scope():   # mmengine restores its scopes as copies: compare names
        return getattr(DefaultScope.get_current_instance(), 'scope_name', None)

    scope_before = current_scope()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        torch.manual_seed(0)
        teacher = MODELS.build(Config.fromfile(REPO / ablation.TEACHER_CONFIG).model)
        torch.save(dict(state_dict=teacher.state_dict(), meta=dict()), tmp_path / 'teacher.pth')
        cfg = Config.fromfile(REPO / ablation.row_config('baseline'))
        cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
        for seed in (1, 2):  # two different students, their scales set by a first forward
            torch.manual_seed(seed)
            student = MODELS.build(cfg.model).train()
            student.student(torch.randn(8, 1, 28, 28), mode='tensor')
            torch.save(dict(state_dict=student.state_dict(), meta=dict()),
                       tmp_path / f'student{seed}.pth')
    first, second, again = (
        ablation.diagnostics('baseline', tmp_path / name, str(tmp_path / 'teacher.pth'))
        for name in ('student1.pth', 'student2.pth', 'student1.pth'))
    assert current_scope() == scope_before  # none left set for later tests
    assert first == again
    assert first['kendall_tau'] != second['kendall_tau']
    assert first['grad_norm'] != second['grad_norm']
    sys.modules.pop('bivit_ablation', None)
