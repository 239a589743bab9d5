"""A3R's attribute augmentation: completions, the zero-shot argmax, slots never filled, the tool."""
import json

import numpy as np
import pytest
from PIL import Image

from mmext.datasets import CorruptDataError
from projects.a3r.attributes import AttributeVocabulary, augment_annotations, completions
from projects.a3r.dataset import AnnotationLine, read_annotations
from tests.conftest import REPO, run_tool

VOCABULARY = {'slots': {
    'colour': {'values': ['white', 'red', 'blue'], 'fill': True, 'insert_before': ['brand', 'type']},
    'type': {'values': ['sedan', 'suv'], 'fill': True, 'insert_before': []},
    'brand': {'values': ['audi', 'land rover'], 'fill': False}},
    'route_slots': ['colour', 'type', 'brand']}


@pytest.fixture
def vocabulary(tmp_path):
    path = tmp_path / 'vocabulary.json'
    path.write_text(json.dumps(VOCABULARY))
    return AttributeVocabulary.from_json(path)


def test_completions_insert_the_missing_colour_before_its_anchor(vocabulary):
    candidates, missing, status = completions('An Audi sedan on the road.', vocabulary)
    assert status == 'candidates' and missing == ['colour']
    assert candidates == ['A white Audi sedan on the road.', 'A red Audi sedan on the road.',
                          'A blue Audi sedan on the road.']  # the article agrees
    assert completions('A white Audi sedan.', vocabulary)[2] == 'complete'
    assert completions('A man walking a dog.', vocabulary)[2] == 'other domain'
    # type missing and no anchor for it: it cannot be placed, the caption stays
    assert completions('A white Audi.', vocabulary)[2] == 'no anchor'


def test_augmentation_keeps_the_zero_shot_argmax_and_never_fills_brands(vocabulary):
    lines = [AnnotationLine('1.jpg', '', 'A sedan parked.'),     # colour missing, brand too
             AnnotationLine('2.jpg', '', 'A red SUV.'),           # complete (brands not filled)
             AnnotationLine('3.jpg', '', 'A woman with a bag.')]  # another domain
    scored = []

    def score(path, captions):  # the CLIP's judgement, stubbed: prefers 'blue' for 1.jpg
        scored.append((path, captions))
        return [1.0 if 'blue' in c else 0.0 for c in captions]

    out, report = augment_annotations(lines, vocabulary, score, lambda name: f'/data/{name}')
    assert [line.caption for line in out] == ['A blue sedan parked.', 'A red SUV.',
                                              'A woman with a bag.']
    assert scored == [('/data/1.jpg', ['A white sedan parked.', 'A red sedan parked.',
                                       'A blue sedan parked.'])]
    assert report['completed'] == 1 and report['filled_per_slot'] == {'colour': 1}
    assert report['already_complete'] == 1 and report['other_domain'] == 1
    assert report['never_filled'] == ['brand']
    assert all('audi' not in line.caption.lower() for line in out)


def test_bad_vocabularies_are_named(tmp_path):
    path = tmp_path / 'v.json'
    path.write_text('{"slots": ')
    with pytest.raises(CorruptDataError, match='not valid JSON'):
        AttributeVocabulary.from_json(path)
    path.write_text('{"slots": {"colour": {"fill": true}}}')
    with pytest.raises(CorruptDataError, match='does not follow the schema'):
        AttributeVocabulary.from_json(path)
    path.write_text('{"slots": {"colour": {"values": ["red"], "insert_before": ["make"]}}}')
    with pytest.raises(CorruptDataError, match=r"unknown slots \['make'\]"):
        AttributeVocabulary.from_json(path)


def test_the_demo_vocabulary_has_the_caption_words():
    from mmext.datasets.fashion_captions import FashionVocabulary
    demo = AttributeVocabulary.from_json(REPO / 'projects/a3r/fashion_attributes.json')
    words = FashionVocabulary()
    assert demo.slots['colour'].values == list(words.data['colours'])
    nouns = {name.lower() for pairs in words.nouns for pair in pairs for name in pair}
    assert set(demo.slots['type'].values) == nouns
    assert not demo.slots['size'].fill


@pytest.mark.slow
def test_tool_on_a_tiny_clip(tmp_path, tiny_clip_folder):
    for name in ('a', 'b'):
        Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / f'{name}.png')
    (tmp_path / 'label.txt').write_text('a.png$red Bag$a photo of a bag.\n'
                                        'b.png$blue Coat$a blue coat.\n')
    out = tmp_path / 'augmented.txt'
    result = run_tool('tools/a3r/attribute_augment.py', tmp_path / 'label.txt', tmp_path,
                      REPO / 'projects/a3r/fashion_attributes.json', out,
                      '--clip', f'local-dir:{tiny_clip_folder}')
    assert result.returncode == 0, result.stdout[-3000:]
    lines = read_annotations(out)
    assert lines[1].caption == 'a blue coat.'
    colour = lines[0].caption.split()[-2]
    assert lines[0].caption == f'a photo of a {colour} bag.'
    assert colour in _demo_colours()
    report = json.loads(out.with_suffix('.report.json').read_text())
    assert report['completed'] == 1 and report['already_complete'] == 1
    (tmp_path / 'a.png').write_bytes(b'broken')
    result = run_tool('tools/a3r/attribute_augment.py', tmp_path / 'label.txt', tmp_path,
                      REPO / 'projects/a3r/fashion_attributes.json', out,
                      '--clip', f'local-dir:{tiny_clip_folder}')
    assert result.returncode != 0 and 'cannot read the image' in result.stdout


def _demo_colours():
    return json.loads((REPO / 'projects/a3r/fashion_attributes.json').read_text())[
        'slots']['colour']['values']
