import gzip

import numpy as np
import pytest

from mmext.datasets import (
    FASHION_MNIST_CLASSES,
    CorruptDataError,
    DataNotFoundError,
    FashionMNIST,
    load_fashion_mnist,
    read_idx,
)


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, 'big') + b''.join(n.to_bytes(4, 'big') for n in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_real_data_loads(fashion_mnist_root):
    images, labels = load_fashion_mnist('test')
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10  # the test split is balanced


def test_registered_dataset_reads_the_folder(fashion_mnist_root):
    ds = FashionMNIST(data_root=str(fashion_mnist_root), split='test', indices=5, pipeline=[])
    assert len(ds) == 5 and ds.metainfo['classes'] == FASHION_MNIST_CLASSES
    item = ds[0]
    assert item['img'].shape == (28, 28) and 0 <= item['gt_label'] < 10


def test_index_range_keeps_a_slice_of_the_split(fashion_mnist_root):
    images, labels = load_fashion_mnist('test')
    ds = FashionMNIST(split='test', index_range=(9000, 10000), indices=3, pipeline=[])
    assert len(ds) == 3
    assert np.array_equal(ds[2]['img'], images[9002]) and ds[2]['gt_label'] == labels[9002]
    with pytest.raises(ValueError, match=r'0 <= start < stop <= 10000'):
        FashionMNIST(split='test', index_range=(5000, 10001))


def test_idx_round_trip(tmp_path):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    _write_idx(tmp_path / 'x.gz', images, 2051)
    np.testing.assert_array_equal(read_idx(tmp_path / 'x.gz', 'images'), images)


def test_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError, match='apt-get install dataset-fashion-mnist'):
        load_fashion_mnist('train', tmp_path / 'nowhere')


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataNotFoundError, match='train-images-idx3-ubyte.gz is missing'):
        load_fashion_mnist('train', tmp_path)


@pytest.mark.parametrize('damage, message', [
    (lambda p: p.write_bytes(b'not gzip at all'), 'cannot be read'),
    (lambda p: p.write_bytes(gzip.compress(b'\x00\x00\x08\x01' + bytes(20))), 'not an IDX images'),
    (lambda p: p.write_bytes(gzip.compress(
        (2051).to_bytes(4, 'big') + (10).to_bytes(4, 'big') + (28).to_bytes(4, 'big') * 2
        + bytes(100))), 'truncated or damaged'),
])
def test_corrupt_file_is_named(tmp_path, damage, message):
    path = tmp_path / 't10k-images-idx3-ubyte.gz'
    damage(path)
    with pytest.raises(CorruptDataError, match=message) as info:
        read_idx(path, 'images')
    assert str(path) in str(info.value)


def test_wrong_split_is_refused():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist('val')
