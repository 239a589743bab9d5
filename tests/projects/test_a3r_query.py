"""A3R's query routing and suffix."""
import pytest

from projects.a3r.query import QuerySuffix, route_query, strip_leading_article

ROUTES = {'vehicle': ['sedan', 'suv', 'white', 'red', 'mercedes-benz', 'land rover']}
SUFFIX = {'vehicle': 'This image was taken by a traffic surveillance camera.'}


def test_routing_by_whole_words_and_phrases():
    assert route_query('A white sedan.', ROUTES, 'person') == 'vehicle'
    assert route_query('A grey Land Rover.', ROUTES, 'person') == 'vehicle'
    assert route_query('A man in a whiteboard shop.', ROUTES, 'person') == 'person'
    assert route_query('A Mercedes-Benz.', ROUTES, 'person') == 'vehicle'


def test_suffix_and_article():
    transform = QuerySuffix(ROUTES, SUFFIX, default='person')
    out = transform(dict(text='A white sedan'))
    assert out == dict(text='White sedan. This image was taken by a traffic surveillance '
                       'camera.', route='vehicle')
    person = transform(dict(text='A woman with a red bag.'))  # 'red' routes it: a vehicle word
    assert person['route'] == 'vehicle'
    walker = transform(dict(text='A woman walking.'))
    assert walker == dict(text='A woman walking.', route='person')
    assert strip_leading_article('The car.') == 'Car.'
    assert strip_leading_article('Another car.') == 'Another car.'


def test_a_list_of_captions_is_routed_one_by_one():
    out = QuerySuffix(ROUTES, SUFFIX, default='person')(dict(text=['A SUV.', 'A man.']))
    assert out['route'] == ['vehicle', 'person']
    assert out['text'] == ['SUV. This image was taken by a traffic surveillance camera.',
                           'A man.']


def test_route_words_from_an_attribute_vocabulary(tmp_path):
    import json
    path = tmp_path / 'vocabulary.json'
    path.write_text(json.dumps({'slots': {'colour': {'values': ['white']},
                                          'type': {'values': ['sedan']}},
                                'route_slots': ['type']}))
    transform = QuerySuffix({'vehicle': str(path)}, SUFFIX, default='person')
    assert transform(dict(text='A sedan.'))['route'] == 'vehicle'
    assert transform(dict(text='A white dog.'))['route'] == 'person'  # colour is not a route slot


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='routes that do not exist'):
        QuerySuffix(ROUTES, {'bike': 'x'}, default='person')
    with pytest.raises(KeyError, match=r"needs results\['text'\]"):
        QuerySuffix(ROUTES, SUFFIX, default='person')(dict(img_path='x.jpg'))
