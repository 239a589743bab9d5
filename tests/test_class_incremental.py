"""Class-incremental sequences: the dataset split, the continual metric, the task loop (with
resume) and the CLIP classifiers it trains."""
import copy

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from PIL import Image

import projects.attriclip  # noqa: F401  (registers the AttriCLIP parts)
from mmext.datasets.class_incremental import ClassIncrementalDataset, MergedClassDataset
from mmext.evaluation.continual import MATRIX_KEY, ContinualAccuracy, continual_summary

CLASSES = ('ant', 'bee', 'cat', 'dog')


def write_folder(root, classes=CLASSES, per_class=4, size=64):
    """An ImageFolder layout (root/<class>/<i>.png) of random images."""
    rng = np.random.RandomState(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.randint(0, 255, (size, size, 3), np.uint8)).save(
                root / c / f'{i}.png')
    return root


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp('folder'))


def folder_dataset(root, pipeline=()):
    from mmpretrain.datasets import CustomDataset
    return CustomDataset(data_root=str(root), pipeline=list(pipeline) or
                         [dict(type='mmpretrain.PackInputs')])


# --------------------------------------------------------------------- dataset
def test_tasks_are_cut_from_the_seeded_order(image_folder):
    seq = ClassIncrementalDataset(folder_dataset(image_folder), classes_per_task=2,
                                  class_order_seed=1993)
    order = np.random.RandomState(1993).permutation(4).tolist()
    assert seq.task_classes == [order[:2], order[2:]]
    assert seq.seen_classes(1) == order
    assert len(seq.view(0, 'task')) == 8 and len(seq.view(1, 'seen')) == 16
    labels = {int(seq.view(1, 'task')[i]['data_samples'].gt_label) for i in range(8)}
    assert labels == set(order[2:])  # global labels, only the task's classes
    sample = seq.view(1, 'seen')[0]['data_samples']
    assert sample.task_id == (0 if int(sample.gt_label) in order[:2] else 1)
    assert seq.metainfo['task_classes'] == seq.task_classes


def test_explicit_tasks_and_names(image_folder):
    seq = ClassIncrementalDataset(folder_dataset(image_folder),
                                  tasks=[['dog'], ['ant', 'cat', 'bee']])
    assert seq.task_classes == [[3], [0, 2, 1]] and seq.num_tasks == 2


@pytest.mark.parametrize('kwargs, message', [
    (dict(tasks=[['ant', 'bee'], ['bee', 'cat', 'dog']]), 'tasks overlap'),
    (dict(classes_per_task=2, class_order=['ant', 'bee', 'cat', 'zebra']), "'zebra'"),
    (dict(classes_per_task=2, class_order=[0, 1, 2, 7]), 'class id 7'),
    (dict(classes_per_task=3), 'add up to'),
    (dict(classes_per_task=2, class_order=[0, 0, 1, 2]), 'repeats'),
    (dict(), 'classes_per_task'),
    (dict(classes_per_task=2, subset='all'), "subset must be 'task'"),
    (dict(classes_per_task=2, task=5), 'task 5 does not exist'),
])
def test_bad_splits_are_named(image_folder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassIncrementalDataset(folder_dataset(image_folder), **kwargs)


def test_merged_datasets_share_names_and_cut_by_source(tmp_path):
    a = folder_dataset(write_folder(tmp_path / 'a', ('ant', 'aquarium_fish'), per_class=2))
    b = folder_dataset(write_folder(tmp_path / 'b', ('aquarium fish', 'zebra'), per_class=2))
    merged = MergedClassDataset([a, b])
    assert merged.metainfo['classes'] == ('ant', 'aquarium_fish', 'zebra')
    assert merged.get_gt_labels().tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    assert merged.get_source_labels().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert int(merged[4]['data_samples'].gt_label) == 1  # b's fish under the merged id
    seq = ClassIncrementalDataset(merged, classes_per_task=1, class_order_seed=0,
                                  class_order_blocks=[2, 2], split_key='source_label')
    first, second = seq.split_tasks[:2], seq.split_tasks[2:]
    assert sorted(c for t in first for c in t) == [0, 1]  # a's classes before b's
    assert sorted(c for t in second for c in t) == [2, 3]
    fish_tasks = [t for t, classes in enumerate(seq.task_classes) if 1 in classes]
    assert len(fish_tasks) == 2  # the shared class is learned once per source


# ---------------------------------------------------------------------- metric
def test_summary_against_a_hand_matrix():
    matrix = np.array([[90, np.nan, np.nan], [70, 80, np.nan], [60, 75, 85]])
    seen = np.array([90, 75, 73])
    out = continual_summary(matrix, seen)
    assert out['Avg'] == pytest.approx(238 / 3) and out['Last'] == 73
    # task 0: max(90, 70) - 60 = 30; task 1: 80 - 75 = 5
    assert out['Forgetting'] == pytest.approx(17.5)


def _prediction(scores, label, task=-1):
    out = dict(pred_score=torch.tensor(scores, dtype=torch.float), gt_label=torch.tensor([label]))
    if task >= 0:
        out['task_id'] = task
    return out


def test_metric_fills_rows_and_restricts_candidates():
    MessageHub.get_instance('continual-metric-test')
    meta = dict(task_classes=[[0, 1], [2, 3]])
    metric = ContinualAccuracy()
    metric.dataset_meta = dict(meta, task=0)
    # class 2 scores highest but is not seen after task 0: the row ignores it
    metric.process(None, [_prediction([0.1, 0.3, 0.9, 0], 1), _prediction([0.5, 0.4, 0, 0], 0)])
    row0 = metric.evaluate(2)
    assert row0['continual/task0'] == 100 and 'continual/Avg' not in row0
    metric.dataset_meta = dict(meta, task=1)
    metric.process(None, [_prediction([0.1, 0.3, 0.9, 0], 1), _prediction([0.5, 0.4, 0, 0], 0),
                          _prediction([0, 0, 0.2, 0.8], 2), _prediction([0, 0, 0.2, 0.8], 3)])
    row1 = metric.evaluate(4)
    assert row1['continual/task0'] == 50 and row1['continual/task1'] == 50
    assert row1['continual/seen'] == 50 and row1['continual/Last'] == 50
    assert row1['continual/Forgetting'] == 50 and row1['continual/Avg'] == 75
    rows = MessageHub.get_current_instance().get_info(MATRIX_KEY)
    assert rows[0]['row'] == [100.0] and rows[1]['row'] == [50.0, 50.0]


def test_metric_all_prefixes_for_a_fixed_model():
    MessageHub.get_instance('continual-metric-prefixes')
    metric = ContinualAccuracy(all_prefixes=True)
    metric.dataset_meta = dict(task_classes=[[0], [1]], task=1)
    metric.process(None, [_prediction([0.2, 0.8], 0), _prediction([0.1, 0.9], 1)])
    out = metric.evaluate(2)
    assert out['continual/matrix'] == str([[100.0], [0.0, 100.0]])
    assert out['continual/Forgetting'] == 100 and out['continual/Avg'] == 75


def test_metric_needs_the_split():
    metric = ContinualAccuracy()
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process(None, [_prediction([1, 0, 0, 0], 0)])
    with pytest.raises(ValueError, match='ClassIncrementalDataset'):
        metric.evaluate(1)


# ------------------------------------------------------------------ classifiers
@pytest.fixture(scope='module')
def clip_cfg(tiny_clip_folder):
    return dict(model_name=f'local-dir:{tiny_clip_folder}')


def test_zero_shot_and_predictions_over_all_classes(clip_cfg):
    from mmext.clip import ZeroShotCLIPClassifier
    model = ZeroShotCLIPClassifier(clip_cfg, class_names=['ant', 'aquarium_fish', 'cat'])
    assert model.class_names[1] == 'aquarium fish'
    model.set_seen_classes([2, 0])
    images = torch.randn(3, 3, 64, 64)
    feats = model.clip.encode_image(images)
    text = model.clip.encode_text(['a photo of a cat.', 'a photo of a ant.'])
    expected = model.clip.logit_scale * feats @ text.T
    torch.testing.assert_close(model(images), expected, atol=1e-4, rtol=1e-4)
    samples = model.predict(images)
    scores = torch.stack([s.pred_score for s in samples])
    assert (scores[:, 1] == 0).all() and torch.allclose(scores.sum(1), torch.ones(3))
    assert {int(s.pred_label) for s in samples} <= {0, 2}


def test_coop_learns_only_its_context_and_linear_probe_its_layer(clip_cfg):
    from mmpretrain.structures import DataSample

    from mmext.clip import CoOpClassifier, LinearProbeClassifier
    images = torch.randn(2, 3, 64, 64)
    samples = [DataSample().set_gt_label(2), DataSample().set_gt_label(0)]
    for model in (CoOpClassifier(clip_cfg, num_context=4, class_names=CLASSES),
                  LinearProbeClassifier(clip_cfg, class_names=CLASSES)):
        model.set_seen_classes([0, 2])
        sum(model.loss(images, samples).values()).backward()
        trained = {n for n, p in model.named_parameters() if p.grad is not None}
        assert trained and all(not n.startswith('clip.') for n in trained)
        with pytest.raises(ValueError, match='not among the seen classes'):
            model.loss(images, [DataSample().set_gt_label(1)] * 2)


def test_class_names_file_and_extra_state(clip_cfg, tmp_path):
    from mmext.clip import ZeroShotCLIPClassifier
    model = ZeroShotCLIPClassifier(clip_cfg, class_names=str(tmp_path / 'missing.txt'))
    with pytest.raises(FileNotFoundError, match='one class name per line'):
        model.seen_names()
    (tmp_path / 'classes.txt').write_text('ant\ngolden_retriever\n')
    model = ZeroShotCLIPClassifier(clip_cfg, class_names=str(tmp_path / 'classes.txt'))
    assert model.seen_names() == ['ant', 'golden retriever']
    model.set_seen_classes([1])
    other = ZeroShotCLIPClassifier(clip_cfg, class_names=['x', 'y'])
    other.load_state_dict(model.state_dict())
    assert other.class_names == ['ant', 'golden retriever'] and other.seen_classes == [1]
    with pytest.raises(ValueError, match='empty'):
        ZeroShotCLIPClassifier(clip_cfg, class_names=[])


# ------------------------------------------------------------------------ loop
def loop_cfg(root, clip_cfg, work_dir, epochs_per_task=2):
    seq = dict(type='mmext.ClassIncrementalDataset', classes_per_task=2, class_order_seed=0)
    data = dict(type='CustomDataset', data_root=str(root),
                pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    loader = dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True))
    return dict(
        model=dict(type='mmext.AttriCLIPClassifier', clip=clip_cfg, class_names=None,
                   bank=dict(num_attributes=4, prompt_length=2, top_k=2),
                   orthogonality_loss=dict(type='mmext.PromptOrthogonalityLoss'),
                   data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3,
                                          std=[64.0] * 3, to_rgb=True)),
        work_dir=str(work_dir),
        train_dataloader=dict(loader, dataset=dict(seq, subset='task', dataset=data)),
        val_dataloader=dict(loader, sampler=dict(type='DefaultSampler', shuffle=False),
                            dataset=dict(seq, subset='seen', dataset=data)),
        val_evaluator=dict(type='mmext.ContinualAccuracy'),
        train_cfg=dict(type='mmext.ClassIncrementalLoop', epochs_per_task=epochs_per_task),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        param_scheduler=[dict(type='CosineRestartLR', by_epoch=True,
                              periods=[epochs_per_task] * 2, restart_weights=[1, 1],
                              eta_min_ratio=1e-3)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING')


def _train(cfg, name, resume_from=None):
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    cfg['experiment_name'] = name
    if resume_from is not None:
        cfg.update(load_from=str(resume_from), resume=True)
    runner = Runner(**cfg)
    model = runner.train()
    rows = runner.message_hub.get_info(MATRIX_KEY)
    bank = {k: v.detach().clone() for k, v in model.bank.state_dict().items()}
    return rows, bank


def test_loop_trains_two_tasks_and_resumes_in_the_second(image_folder, clip_cfg, tmp_path):
    cfg = loop_cfg(image_folder, clip_cfg, tmp_path / 'run')
    rows, bank = _train(cfg, 'ci-loop-full')
    assert sorted(rows) == [0, 1] and len(rows[0]['row']) == 1 and len(rows[1]['row']) == 2
    # resumed in task 2 (epoch 3 of 4), and from the end of task 1, saved before its evaluation
    for epoch in (3, 2):
        resumed_dir = tmp_path / f'resumed{epoch}'
        rcfg = dict(cfg, work_dir=str(resumed_dir))
        rrows, rbank = _train(rcfg, f'ci-loop-resume{epoch}',
                              resume_from=tmp_path / f'run/epoch_{epoch}.pth')
        for key in bank:
            torch.testing.assert_close(rbank[key], bank[key])
        assert rrows[1]['row'] == pytest.approx(rows[1]['row'])
        # resumed at a task boundary, the finished task (saved before its evaluation) is
        # evaluated first, with the same result
        assert rrows[0]['row'] == pytest.approx(rows[0]['row'])


def test_loop_rejects_mismatched_val_sequence(image_folder, clip_cfg, tmp_path):
    cfg = loop_cfg(image_folder, clip_cfg, tmp_path / 'bad', epochs_per_task=1)
    cfg['val_dataloader']['dataset']['class_order_seed'] = 1
    with pytest.raises(ValueError, match='cut the classes differently'):
        _train(cfg, 'ci-loop-bad-val')


def test_loop_needs_a_sequence(image_folder, clip_cfg, tmp_path):
    cfg = loop_cfg(image_folder, clip_cfg, tmp_path / 'plain', epochs_per_task=1)
    cfg['train_dataloader']['dataset'] = cfg['train_dataloader']['dataset']['dataset']
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            pytest.raises(TypeError, match='ClassIncrementalDataset'):
        _train(cfg, 'ci-loop-plain')


def test_reverse_channels():
    from mmext.datasets import ReverseChannels
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    out = ReverseChannels()(dict(img=img))['img']
    assert (out[..., 0] == img[..., 2]).all() and (out[..., 2] == img[..., 0]).all()
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        ReverseChannels()(dict(img=np.zeros((2, 2))))
