"""MVP-SEG+ pieces: the pseudo-label rule, the file encoding of the pseudo-labels, and the
stage-2 configs (their split agrees with MVP-SEG's, they train on the pseudo-labels and
evaluate on the real labels)."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from projects.mvpseg import PseudoLabeler, annotation_lut, select_pseudo_labels, unseen_pixel_mask
from tests.conftest import REPO

UNSEEN = [2, 5]  # training labels; 255 is void


def test_unseen_pixel_mask_excludes_void_and_seen_pixels():
    labels = torch.tensor([[0, 2, 255], [5, 1, 2]])
    assert unseen_pixel_mask(labels, UNSEEN).tolist() == [[False, True, False],
                                                           [True, False, True]]
    # an ignore index that is also a class index never counts
    assert not unseen_pixel_mask(torch.tensor([255, 255]), [255], 255).any()


def test_select_pseudo_labels_keeps_confident_unseen_predictions_on_candidates():
    # 4 pixels, 6 classes: confident unseen / unsure unseen / confident seen / not a candidate
    probs = torch.full((1, 6, 1, 4), 0.02)
    probs[0, 2, 0, 0] = 0.9
    probs[0, 5, 0, 1] = 0.5
    probs[0, 1, 0, 2] = 0.9
    probs[0, 2, 0, 3] = 0.9
    candidates = torch.tensor([[[True, True, True, False]]])
    pred, keep = select_pseudo_labels(probs, candidates, UNSEEN, threshold=0.8)
    assert pred.tolist() == [[[2, 5, 1, 2]]]
    assert keep.tolist() == [[[True, False, False, False]]]
    _, keep = select_pseudo_labels(probs, candidates, UNSEEN, threshold=0.0)
    assert keep.tolist() == [[[True, True, False, False]]]


def test_annotation_lut_follows_mmsegs_loader():
    assert (annotation_lut() == np.arange(256)).all()
    reduced = annotation_lut(reduce_zero_label=True)
    assert reduced[0] == 255 and reduced[1] == 0 and reduced[255] == 255
    # Fashion Scenes with the 10 item classes only: background (0) -> 255, 1..10 -> 0..9
    mapped = annotation_lut(label_map={0: 255, **{i: i - 1 for i in range(1, 11)}})
    assert mapped[0] == 255 and mapped[3] == 2 and mapped[255] == 255


def _probs(pred: np.ndarray, confidence: float, classes: int = 10) -> torch.Tensor:
    """(C, H, W) probabilities whose argmax is ``pred`` with the given probability."""
    probs = torch.full((classes, *pred.shape), (1 - confidence) / (classes - 1))
    probs.scatter_(0, torch.as_tensor(pred)[None].long(), confidence)
    return probs


@pytest.mark.parametrize('encoding', ['label_map', 'reduce_zero_label', 'plain'])
def test_pseudo_labeler_rewrites_only_unseen_pixels_in_the_file_encoding(encoding, tmp_path):
    if encoding == 'label_map':  # file 0 = background, ignored; file v = class v - 1
        lut = annotation_lut(label_map={0: 255, **{i: i - 1 for i in range(1, 11)}})
        to_file = 1
    elif encoding == 'reduce_zero_label':  # file 0 = ignored, file v = class v - 1 (ADE)
        lut = annotation_lut(reduce_zero_label=True)
        to_file = 1
    else:  # file v = class v (COCO-Stuff)
        lut, to_file = annotation_lut(), 0
    # file values: column 0 void (255), column 1 "background" / 0, then seen class 1, unseen 2,
    # unseen 5, unseen 2 (file values shifted by the encoding)
    row = np.array([255, 0, 1 + to_file, 2 + to_file, 5 + to_file, 2 + to_file], np.uint8)
    values = np.stack([row, row])
    # predictions: unseen 5 everywhere but the last column (seen 1); row 1 unsure
    pred = np.full(values.shape, 5)
    pred[:, -1] = 1
    probs = _probs(pred, 0.95)
    probs[:, 1] = _probs(pred[1], 0.3)
    out, counts = PseudoLabeler(lut, UNSEEN, threshold=0.9)(values, probs)
    candidates = np.isin(lut[values], UNSEEN)
    assert (out[~candidates] == values[~candidates]).all()  # void, background, seen: as read
    assert out[0, 0] == 255
    # row 0: confident unseen predictions become labels; the seen prediction is ignored
    assert out[0, 3] == out[0, 4] == 5 + to_file and out[0, 5] == 255
    assert (out[1, 3:] == 255).all()  # row 1: below the threshold, ignored; never the GT
    assert counts == dict(unseen_pixels=6, labelled={2: 0, 5: 2})
    # the stock loader reads the written file as the intended training labels
    path = tmp_path / 'pseudo.png'
    Image.fromarray(out).save(path)
    from mmseg.datasets.transforms import LoadAnnotations
    loaded = LoadAnnotations()(dict(seg_map_path=str(path), seg_fields=[],
                                    reduce_zero_label=encoding == 'reduce_zero_label',
                                    label_map=None if encoding != 'label_map' else
                                    {0: 255, **{i: i - 1 for i in range(1, 11)}}))['gt_seg_map']
    assert loaded[0, 3] == loaded[0, 4] == 5 and loaded[0, 5] == 255 and loaded[0, 2] == 1


def test_pseudo_labeler_rejects_bad_input():
    lut = annotation_lut()
    with pytest.raises(ValueError, match='no unseen classes'):
        PseudoLabeler(lut, [], 0.9)
    labeler = PseudoLabeler(lut, UNSEEN, 0.9)
    with pytest.raises(ValueError, match='differ in size'):
        labeler(np.zeros((4, 4), np.uint8), torch.rand(10, 4, 5))
    # a dataset whose files cannot hold the unseen class (classes cut by the label map)
    with pytest.raises(ValueError, match=r'training labels \[5\]'):
        PseudoLabeler(annotation_lut(label_map={v: 255 for v in range(5, 255)}), UNSEEN, 0.9)


def test_head_and_tool_share_the_rule():
    """The transductive head pseudo-labels through the same two helpers as the tool."""
    import inspect

    from projects.mvpseg import head
    source = inspect.getsource(head.MVPSegHead)
    assert 'unseen_pixel_mask(' in source and 'select_pseudo_labels(' in source


# ------------------------------------------------------------------------ configs
PLUS_DEMO = REPO / 'configs/mvpseg/mvpseg-plus_deeplabv3plus-r18-d8_1xb8-2k_fashion-scenes.py'
PLUS_COCO = (REPO / 'configs/mvpseg/'
             'mvpseg-plus_deeplabv3plus-r101-d8_4xb4-80k_coco-stuff164k-512x512.py')
MVPSEG_DEMO = REPO / 'configs/mvpseg/mvpseg_demo-clip_1xb16-200it_fashion-scenes.py'
MVPSEG_COCO = (REPO / 'configs/mvpseg/'
               'mvpseg_vit-b16_8xb2-80k_coco-stuff164k-512x512_transductive.py')


@pytest.mark.parametrize('plus, mvpseg', [(PLUS_DEMO, MVPSEG_DEMO), (PLUS_COCO, MVPSEG_COCO)],
                         ids=['demo', 'coco-stuff'])
def test_stage2_configs_train_on_pseudo_labels_and_keep_mvpsegs_split(plus, mvpseg):
    stage2, stage1 = Config.fromfile(plus), Config.fromfile(mvpseg)
    assert stage2.model.type == 'EncoderDecoder'  # an ordinary mmseg segmentor
    assert stage2.model.decode_head.type == 'DepthwiseSeparableASPPHead'  # DeepLabV3+
    train, val = stage2.train_dataloader.dataset, stage2.val_dataloader.dataset
    first = stage1.train_dataloader.dataset
    assert train.data_prefix.img_path == first.data_prefix.img_path
    assert train.data_prefix.seg_map_path != first.data_prefix.seg_map_path
    assert 'mvpseg-plus' in train.data_prefix.seg_map_path
    assert val.data_prefix == stage1.val_dataloader.dataset.data_prefix  # the real labels
    assert train.type == first.type and train.get('metainfo') == first.get('metainfo')
    head = stage1.model.decode_head
    classes = head.class_names
    if isinstance(classes, str):
        from mmseg.registry import DATASETS
        classes = DATASETS.get(classes).METAINFO['classes']
    assert stage2.model.decode_head.num_classes == len(classes)
    assert stage2.model.auxiliary_head.num_classes == len(classes)
    assert list(stage2.val_evaluator.unseen_classes) == list(head.unseen_classes)
    assert stage2.val_evaluator.setting == 'transductive'
