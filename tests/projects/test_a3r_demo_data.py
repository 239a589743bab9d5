"""The Fashion Scenes retrieval set of A3R's demo: captions with and without colour words."""
import re

import numpy as np

from mmext.datasets.fashion_captions import FashionVocabulary, SceneObject
from projects.a3r.dataset import TextImageRetrievalDataset, read_annotations
from tests.conftest import run_tool


def test_captions_with_and_without_colour():
    words = FashionVocabulary()
    rng = np.random.default_rng(0)
    item = [SceneObject(8, (1.0, 0.35, 0.35), (10, 10, 40, 40))]  # a red bag
    for _ in range(20):
        assert 'red' in words.describe(item, 128, rng, colour=True)
        assert 'red' not in words.describe(item, 128, rng, colour=False)


def test_tool_writes_the_challenge_layout(tiny_scene_items, tmp_path):
    result = run_tool('tools/data/make_fashion_retrieval.py', '--items', tiny_scene_items,
                      '--out', tmp_path, '--missing-colour', '1.0')
    assert result.returncode == 0, result.stdout[-3000:]
    colours = list(FashionVocabulary().data['colours'])
    train, val = (read_annotations(tmp_path / f'{s}_label.txt') for s in ('train', 'val'))
    assert len(train) == len(val) == 8
    assert all(line.attributes.split()[0] in colours for line in train)
    assert not any(c in re.findall(r'[a-z]+', line.caption) for line in train for c in colours)
    data = TextImageRetrievalDataset(str(tmp_path / 'val_label.txt'),
                                     data_prefix=str(tiny_scene_items), test_mode=True)
    assert data.img_size == 8 and data.text_size == 8
