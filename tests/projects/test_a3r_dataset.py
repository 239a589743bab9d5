"""A3R's retrieval data on the challenge's layout: many-to-many matches, both modes, bad files."""
import numpy as np
import pytest
from PIL import Image

from mmext.datasets import CorruptDataError, DataNotFoundError
from projects.a3r.dataset import (
    AnnotationLine,
    TextImageRetrievalDataset,
    read_annotations,
    write_annotations,
)

LINES = ['a.jpg$A white Audi.$A white Audi sedan.',
         'b.jpg$$A red SUV.',
         'a.jpg$A white Audi.$A white car.',
         'c.jpg$A white Audi.$a white audi  sedan.']  # the same caption as line 1


@pytest.fixture
def retrieval_set(tmp_path):
    for name in 'abc':
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f'{name}.jpg')
    (tmp_path / 'label.txt').write_text('\n'.join(LINES) + '\n')
    return tmp_path


def test_training_items_are_the_lines(retrieval_set):
    data = TextImageRetrievalDataset('label.txt', data_root=str(retrieval_set))
    assert len(data) == 4 and (data.img_size, data.text_size) == (3, 4)
    item = data.get_data_info(1)
    assert item['text'] == 'A red SUV.' and item['attributes'] == '' and item['image_id'] == 1


def test_evaluation_items_are_the_images_with_many_to_many_matches(retrieval_set):
    data = TextImageRetrievalDataset('label.txt', data_root=str(retrieval_set), test_mode=True)
    assert len(data) == 3
    a, b, c = (data.get_data_info(i) for i in range(3))
    # text ids image after image: a's two captions 0, 1, b's 2, c's 3
    assert a['text'] == ['A white Audi sedan.', 'A white car.'] and a['text_id'] == [0, 1]
    assert a['gt_image_id'] == [[0, 2], [0]]  # the sedan caption also describes c.jpg
    assert sorted(a['gt_text_id']) == [0, 1, 3] and sorted(c['gt_text_id']) == [0, 3]
    assert b['gt_image_id'] == [[1]] and b['gt_text_id'] == [2] and c['text_id'] == [3]


def test_an_evaluation_subset_keeps_its_ground_truth_inside(retrieval_set):
    data = TextImageRetrievalDataset('label.txt', data_root=str(retrieval_set), test_mode=True,
                                     indices=2)  # a and b: c.jpg and its caption go
    assert (data.img_size, data.text_size) == (2, 3)
    assert data.get_data_info(0)['gt_image_id'] == [[0], [0]]
    with pytest.raises(ValueError, match='number of gallery images'):
        TextImageRetrievalDataset('label.txt', data_root=str(retrieval_set), test_mode=True,
                                  indices=[0, 2])


def test_a_validation_split_carved_by_image(retrieval_set):
    kwargs = dict(ann_file='label.txt', data_root=str(retrieval_set), test_mode=True)
    val = TextImageRetrievalDataset(carve=dict(fraction=0.34, part='val', seed=1), **kwargs)
    train = TextImageRetrievalDataset(carve=dict(fraction=0.34, part='train', seed=1), **kwargs)
    names = lambda d: {d.get_data_info(i)['img_path'] for i in range(len(d))}  # noqa: E731
    assert len(val) == 1 and len(train) == 2 and not names(val) & names(train)
    assert val.text_size + train.text_size == 4  # every caption goes with its image
    with pytest.raises(ValueError, match='carve must be'):
        TextImageRetrievalDataset(carve=dict(fraction=0.1, part='test'), **kwargs)


def test_round_trip(tmp_path):
    lines = [AnnotationLine('x.jpg', '', 'A bag.'), AnnotationLine('y.jpg', 'red', 'A red bag.')]
    write_annotations(tmp_path / 'out.txt', lines)
    assert read_annotations(tmp_path / 'out.txt') == lines
    with pytest.raises(ValueError, match='contains "\\$"'):
        write_annotations(tmp_path / 'bad.txt', [AnnotationLine('x.jpg', '', 'a $5 bag')])


def test_bad_files_are_named(retrieval_set):
    bad = retrieval_set / 'bad.txt'
    bad.write_text('a.jpg$A white Audi.\n')
    with pytest.raises(CorruptDataError, match='line 1: expected "image\\$attributes\\$caption"'):
        read_annotations(bad)
    bad.write_text('a.jpg$A white Audi.$A white car.\nb.jpg$$ \n')
    with pytest.raises(CorruptDataError, match='line 2: image b.jpg has no caption'):
        read_annotations(bad)
    with pytest.raises(DataNotFoundError, match='does not exist'):
        read_annotations(retrieval_set / 'none.txt')
    (retrieval_set / 'b.jpg').unlink()
    with pytest.raises(DataNotFoundError, match=r"1 image\(s\) of .* are not in"):
        TextImageRetrievalDataset('label.txt', data_root=str(retrieval_set))
