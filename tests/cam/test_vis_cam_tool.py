"""tools/analysis/vis_cam.py on the Fashion-MNIST demo classifier (a checkpoint the test writes)
and on a CLIP folder the test writes, with every method name and its bad-input errors."""
import pytest

from tests.conftest import run_tool

CONFIG = 'configs/demo/resnet18-cifar_1xb128-5e_fashion-mnist.py'


@pytest.mark.slow
@pytest.mark.parametrize('method', ['DecomCAM', 'GradCAM'])
def test_classifier_maps_are_written(classifier, method):
    folder, checkpoint, image = classifier
    out = folder / method
    result = run_tool('tools/analysis/vis_cam.py', image, CONFIG, checkpoint, '--method', method,
                      '--target-category', '3', '--num-components', '4', '--out-dir', out)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (out / f'item_{method}.png').is_file()
    assert (out / f'item_{method}_sub_maps.png').is_file() == (method == 'DecomCAM')


@pytest.mark.slow
def test_clip_text_maps_are_written(tmp_path, tiny_clip_folder, classifier):
    _, _, image = classifier
    result = run_tool('tools/analysis/vis_cam.py', image, '--clip',
                      f'local-dir:{tiny_clip_folder}', '--text', 'a red bag',
                      '--target-layers', 'visual.transformer.resblocks.1.ln_1',
                      '--num-prefix-tokens', '1', '--num-components', '3',
                      '--out-dir', tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / 'item_DecomCAM_sub_maps.png').is_file()


def test_bad_input_is_named(classifier, tmp_path):
    folder, checkpoint, image = classifier
    cases = [
        (['--text', 'a bag', image, CONFIG, checkpoint], '--text needs a CLIP model'),
        ([image, CONFIG, checkpoint, '--method', 'MagicCAM'], "unknown --method 'MagicCAM'"),
        ([tmp_path / 'none.png', CONFIG, checkpoint], 'does not exist'),
        ([image], 'give CONFIG and CHECKPOINT'),
        ([image, CONFIG, checkpoint, '--target-layers', 'backbone.layer9'],
         "'backbone.layer9' does not exist"),
        ([image, CONFIG, checkpoint, '--target-category', '12'], 'outside the model'),
    ]
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 20)
    cases.append(([broken, CONFIG, checkpoint], 'not an image PIL can read'))
    for args, message in cases:
        result = run_tool('tools/analysis/vis_cam.py', *args)
        assert result.returncode != 0 and message in result.stdout, (args, result.stdout[-2000:])
