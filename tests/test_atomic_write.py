"""atomic_write: the new text or the old, never a mix, and no temporary file left behind."""
import pytest

from mmext.utils.atomic import atomic_write


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / 'results.json'
    atomic_write(path, 'old')
    atomic_write(path, 'new')
    assert path.read_text() == 'new'
    with pytest.raises(TypeError):
        atomic_write(path, 12)                 # fails while writing
    assert path.read_text() == 'new'
    assert [p.name for p in tmp_path.iterdir()] == ['results.json']
