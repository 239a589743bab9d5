"""FADM: AGCN's shapes and motion weights against hand cases, the moving Fashion-MNIST demo
data, the shared-noise video sampling, the animation metrics, bad input, and the demo's
animator and refiner through the stock tools."""
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from torch.utils.data import default_collate

import projects.fadm  # noqa: F401  (registers the FADM parts)
from mmext.datasets import MovingFashionDataset, render
from mmext.evaluation import AnimationMetric, temporal_error
from mmext.registry import MODELS
from projects.fadm import AGCN, motion_weights
from tests.conftest import REPO, run_tool

DEMO = 'configs/fadm/fadm_demo_moving-fashion.py'


def tiny_agcn(**kwargs) -> AGCN:
    return AGCN(**dict(dict(in_channels=1, num_attributes=6, image_size=16, lowpass_size=4,
                            scales=(4, 8), channels=8, time_dim=16), **kwargs))


def tiny_fadm(**kwargs):
    cfg = Config.fromfile(REPO / DEMO).model
    cfg = dict(cfg, animator_checkpoint=None, sampling=dict(num_steps=3, eta=1.0, seed=0),
               **kwargs)
    return MODELS.build(cfg).eval()


# ------------------------------------------------------------------------ AGCN
def test_motion_weights_against_hand_cases():
    same = motion_weights(torch.full((1, 4), 0.3), 3)            # exp(0) = 1 on both sides
    assert all(torch.allclose(w, torch.ones(1, 4)) for w in same)
    w = torch.full((1, 1), 0.3 + math.log(2.0))                 # exp(w - 0.3) = 2, exp(0.3 - w) = 1/2
    expected = [2.0, 2 / 3 * 2 + 1 / 3 * 0.5, 1 / 3 * 2 + 2 / 3 * 0.5]
    for got, want in zip(motion_weights(w, 3), expected):
        assert got.item() == pytest.approx(want)


def test_agcn_weights_follow_the_formula_and_shapes():
    torch.manual_seed(0)
    agcn = tiny_agcn(num_attributes=8)
    for p in agcn.motion_mlp.parameters():
        torch.nn.init.zeros_(p)                                  # sigmoid(MLP) = 0.5
    a = torch.tensor([[1.0, -2.0, 0.5, 0.0, 3.0, -1.0, 0.25, 2.0]])
    # 8 attributes pooled to 8 channels: the max pool is the identity
    assert torch.allclose(agcn.weights(torch.tensor([7]), a), 0.5 + 0.4 * a)
    agcn = tiny_agcn()
    coarse, other = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    condition, feat = agcn(coarse, coarse, torch.tensor([0, 50]), torch.randn(2, 6))
    assert condition.shape == (2, 1, 16, 16) and condition.abs().max() <= 1
    assert feat == 0                                   # reference = coarse: no colour gap
    assert agcn(coarse, other, torch.tensor([0, 50]), torch.randn(2, 6))[1] > 0
    with pytest.raises(ValueError, match=r'attributes must be \(B, 6\)'):
        agcn(coarse, coarse, torch.tensor([0, 1]), torch.randn(2, 56))
    with pytest.raises(ValueError, match=r'AGCN expects frames \(B, 1, 16, 16\)'):
        agcn(torch.zeros(2, 3, 16, 16), coarse, torch.tensor([0, 1]), torch.randn(2, 6))


# ------------------------------------------------------------------------ demo data
def test_render_and_moving_fashion_data(fashion_mnist_root):
    item = torch.rand(1, 1, 32, 32) * 2 - 1
    assert torch.allclose(render(item, torch.zeros(1, 6)), item, atol=1e-5)   # zero pose
    moved = render(item, torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]))     # 3 px right
    assert torch.allclose(moved[..., 5:-5, 8:-5], item[..., 5:-5, 5:-8], atol=1e-4)
    with pytest.raises(ValueError, match=r'\(B, 6\)'):
        render(item, torch.zeros(1, 5))
    test = MovingFashionDataset(split='test', num_sequences=3, sequence_length=4)
    again = MovingFashionDataset(split='test', num_sequences=3, sequence_length=4)
    assert len(test) == 12
    frames = [test[i] for i in range(4)]
    assert all(f['sequence_id'] == 0 for f in frames) and [f['frame'] for f in frames] == [
        0, 1, 2, 3]
    assert all(torch.equal(f['source'], frames[0]['source']) for f in frames)   # source stays
    assert not torch.equal(frames[0]['driving'], frames[3]['driving'])          # driving moves
    assert torch.equal(test[7]['driving'], again[7]['driving'])                 # from the seed
    assert frames[0]['source'].shape == (1, 32, 32) and frames[0]['driving_attributes'].shape \
        == (6, )
    with pytest.raises(ValueError, match='split'):
        MovingFashionDataset(split='dev')


# --------------------------------------------------------------- shared-noise video
def test_video_sampling_shares_noise_within_a_sequence(fashion_mnist_root):
    torch.manual_seed(0)
    model = tiny_fadm()
    noise = model.video_noise([4, 4, 9], (1, 32, 32))
    assert torch.equal(noise.initial[0], noise.initial[1])
    assert all(torch.equal(s[0], s[1]) for s in noise.steps)
    assert not torch.equal(noise.initial[0], noise.initial[2])
    data = MovingFashionDataset(split='test', num_sequences=2, sequence_length=3)
    batch = default_collate([data[i] for i in range(6)])
    outs = model(**batch, mode='predict')
    assert outs[0]['pred'].shape == (1, 1, 32, 32) and outs[0]['num_steps'] == 3
    # the same inputs give the same frame, whatever else is in the batch
    alone = model(**default_collate([data[4]]), mode='predict')[0]
    assert torch.allclose(alone['pred'], outs[4]['pred'], atol=1e-4)   # float sums only
    # one source frame and one driving frame given twice in a sequence: identical frames
    twice = default_collate([data[1], data[1]])
    a, b = model(**twice, mode='predict')
    assert torch.allclose(a['pred'], b['pred'], atol=1e-4)
    with pytest.raises(ValueError, match='same shape'):
        model(batch['source'], batch['driving'][:, :, :16], batch['source_attributes'],
              batch['driving_attributes'], mode='loss')


def test_fadm_loss_trains_the_refiner_not_the_animator(fashion_mnist_root):
    torch.manual_seed(0)
    model = tiny_fadm().train()
    data = MovingFashionDataset(split='train', num_pairs=4)
    batch = default_collate([data[i] for i in range(4)])
    losses = model(**batch, mode='loss')
    sum(losses.values()).backward()
    assert set(losses) == {'loss_diff', 'loss_feat'}
    assert all(p.grad is None for p in model.animator.parameters())
    assert not model.animator.training
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.agcn.parameters())
    with pytest.raises(ValueError, match='in_channels must be 2'):
        tiny_fadm(unet=dict(type='mmext.Diffusers', cls='UNet2DModel', from_config=dict(
            sample_size=32, in_channels=1, out_channels=1, block_out_channels=(16, ),
            norm_num_groups=8, down_block_types=('DownBlock2D', ),
            up_block_types=('UpBlock2D', ))))
    with pytest.raises(ValueError, match="reference must be 'coarse' or 'driving'"):
        tiny_fadm(reference='gt')


def test_denoiser_sees_the_coarse_frame_only_in_the_diagnosis_config():
    """The diagnosis config feeds concat(condition, coarse, x_t); FADM's own, concat(condition,
    x_t): the coarse argument changes the prediction only in the first."""
    torch.manual_seed(0)
    cfg = Config.fromfile(REPO / 'configs/fadm/fadm-coarse-input_demo_moving-fashion.py').model
    x, condition, t = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32), torch.tensor([3, 50])
    coarse = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        for model, sees in ((tiny_fadm(), False),
                            (tiny_fadm(denoiser_sees_coarse=True, unet=cfg.unet), True)):
            a = model.denoise(x, t, condition, coarse)
            b = model.denoise(x, t, condition, coarse + 1)
            assert a.shape == x.shape
            assert (not torch.equal(a, b)) == sees
    with pytest.raises(ValueError, match=r'concat\(condition, coarse, x_t\): in_channels must '
                                         'be 3, got 2'):
        tiny_fadm(denoiser_sees_coarse=True)


# ------------------------------------------------------------------------ metric
def test_animation_metric_against_hand_cases():
    gt = [torch.full((1, 12, 12), v) for v in (-1.0, 0.0, 1.0)]
    outs = [dict(pred=g[None].clone(), coarse=g + 0.2, gt=g, sequence_id=0, frame=f,
                 num_steps=100) for f, g in enumerate(gt)]
    metric = AnimationMetric()
    metric.process({}, outs)
    res = metric.compute_metrics(metric.results)
    assert res['l1'] == 0 and res['tc_l1'] == 0 and res['psnr'] > 90 and res['num_steps'] == 100
    # coarse: +0.2 in [-1, 1] = +0.1 in [0, 1], clamped at 1 for the last frame
    assert res['coarse_l1'] == pytest.approx((0.1 + 0.1 + 0.0) / 3, abs=1e-6)
    assert res['coarse_psnr'] < res['psnr']
    # temporal error: a change of 0.1 in [0, 1] between the last two frames that gt lacks
    assert res['coarse_tc_l1'] == pytest.approx((0.0 + 0.1) / 2, abs=1e-6)
    assert temporal_error([torch.zeros(2), torch.ones(2)], [torch.zeros(2)] * 2) == 1


# ------------------------------------------------------------------- the stock tools
@pytest.mark.slow
def test_animator_and_fadm_through_the_stock_tools(fashion_mnist_root, tmp_path):
    small = ['train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
             'train_dataloader.dataset.num_pairs=8', 'val_dataloader.num_workers=0',
             'val_dataloader.dataset.num_sequences=1', 'val_dataloader.dataset.sequence_length=2',
             'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
             'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
    done = run_tool('tools/train.py', 'configs/fadm/animator_demo_moving-fashion.py',
                    '--work-dir', tmp_path / 'animator', '--cfg-options', *small)
    assert done.returncode == 0, done.stdout[-3000:]
    fadm = small + [f'model.animator_checkpoint={tmp_path}/animator/iter_1.pth',
                    'model.sampling.num_steps=2']
    done = run_tool('tools/train.py', DEMO, '--work-dir', tmp_path / 'fadm', '--cfg-options',
                    *fadm)
    assert done.returncode == 0, done.stdout[-3000:]
    done = run_tool('tools/test.py', DEMO, tmp_path / 'fadm/iter_1.pth', '--work-dir',
                    tmp_path / 'test', '--cfg-options', 'model.sampling.num_steps=2',
                    'test_dataloader.num_workers=0', 'test_dataloader.dataset.num_sequences=1',
                    'test_dataloader.dataset.sequence_length=2')
    assert done.returncode == 0, done.stdout[-3000:]
    for key in ('anim/l1', 'anim/coarse_l1', 'anim/psnr', 'anim/tc_l1', 'anim/num_steps: 2'):
        assert key in done.stdout, key


# ------------------------------------------------------------ attribute extractor
def test_pose_from_landmarks_against_a_hand_case():
    from projects.fadm.attributes import pose_from_landmarks
    points = np.zeros((468, 3))
    points[33], points[263] = (-1, 0, 0), (1, 0, 0)         # outer eye corners
    points[10], points[152] = (0, -1.5, 0), (0, 1.5, 0)      # forehead, chin
    assert np.allclose(pose_from_landmarks(points), 0)
    a = np.radians(20)
    yaw = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    assert np.allclose(pose_from_landmarks(points @ yaw.T), [a, 0, 0])   # left eye farther
    roll = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    assert np.allclose(pose_from_landmarks(points @ roll.T), [0, 0, a])
    pitch = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    assert np.allclose(pose_from_landmarks(points @ pitch.T), [0, a, 0])   # chin farther


def test_mediapipe_attributes_on_the_astronaut_photo():
    """Eileen Collins's portrait (scikit-image) faces the camera. Tolerance: yaw and roll
    within 10 degrees; pitch within 20 (the mesh puts the chin about 11 degrees deeper than the
    forehead on this frontal face). A mirrored photo flips the roll's sign; turning the photo
    10 degrees anticlockwise lowers the roll by 10 +- 2."""
    from skimage import data, transform

    from projects.fadm import MediaPipeFaceAttributes, NoFaceFoundError
    extractor = MediaPipeFaceAttributes()
    photo = data.astronaut()
    found = extractor(photo)
    yaw, pitch, roll = np.degrees(found['pose'])
    assert abs(yaw) < 10 and abs(roll) < 10 and abs(pitch) < 20
    assert found['landmarks'].shape == (468, 3) and extractor.vector(photo).shape == (9, )
    mirrored = np.degrees(extractor(np.ascontiguousarray(photo[:, ::-1]))['pose'])
    assert abs(mirrored[2] + roll) < 2
    turned = (transform.rotate(photo, 10, center=(170, 110)) * 255).astype(np.uint8)
    assert abs(np.degrees(extractor(turned)['pose'])[2] - (roll - 10)) < 2
    with pytest.raises(NoFaceFoundError, match='no face'):
        extractor(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8'):
        extractor(photo.astype(np.float32))
    extractor.close()


# ------------------------------------------------------------------------ VoxCeleb
@pytest.fixture(scope='module')
def vox_png(tmp_path_factory):
    """A vox-png folder the test writes: train 2 videos x 3 frames, test 1 video of 3 face
    frames and one black frame (no face), all crops of the astronaut portrait."""
    from PIL import Image
    from skimage import data
    root = tmp_path_factory.mktemp('vox-png')
    photo = data.astronaut()
    videos = {'train/id1#a.mp4': 3, 'train/id2#b.mp4': 3, 'test/id3#c.mp4': 3}
    for name, n in videos.items():
        (root / name).mkdir(parents=True)
        for f in range(n):
            crop = photo[8 * f:256 + 8 * f, 80 + 6 * f:336 + 6 * f]
            Image.fromarray(crop).resize((128, 128)).save(root / name / f'{f:07d}.png')
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(root / 'test/id3#c.mp4/0000003.png')
    done = run_tool('tools/data/cache_face_attributes.py', root, root / 'attributes.npz')
    assert done.returncode == 0, done.stdout[-3000:]
    assert '3 videos, 10 frames, 1 without a face' in done.stdout
    return root


def test_voxceleb_pairs_on_the_vox_png_layout(vox_png):
    from mmext.datasets import VoxCelebPairDataset
    cache = np.load(vox_png / 'attributes.npz')
    assert cache['test/id3#c.mp4'].shape == (4, 9) and np.isnan(cache['test/id3#c.mp4'][3]).all()
    assert np.isfinite(cache['train/id1#a.mp4']).all()
    train = VoxCelebPairDataset(str(vox_png), 'train', str(vox_png / 'attributes.npz'),
                                pairs_per_video=4, image_size=64)
    assert len(train) == 8
    item = train[0]
    assert item['source'].shape == (3, 64, 64) and item['source'].min() >= -1
    np.random.seed(0)                        # a fresh pair on every visit (the runner seeds)
    visits = {(float(v['source'].sum()), float(v['driving'].sum())) for v in
              (train[0] for _ in range(12))}
    assert len(visits) > 1
    assert item['source_attributes'].shape == (9, )
    test = VoxCelebPairDataset(str(vox_png), 'test', str(vox_png / 'attributes.npz'),
                               image_size=64)
    assert len(test) == 3                       # the faceless frame is left out (and logged)
    assert [test[i]['frame'] for i in range(3)] == [0, 1, 2]
    assert torch.equal(test[0]['source'], test[2]['source'])          # frame 0 drives them all
    with pytest.raises(ValueError, match=r'\(4, 56\)'):
        VoxCelebPairDataset(str(vox_png), 'test', str(vox_png / 'attributes.npz'),
                            num_attributes=56)
    with pytest.raises(ValueError, match='cache_face_attributes'):
        VoxCelebPairDataset(str(vox_png), 'test')
    (vox_png / 'test/empty.mp4').mkdir()
    try:
        with pytest.raises(ValueError, match='holds no frames'):
            VoxCelebPairDataset(str(vox_png), 'test', str(vox_png / 'attributes.npz'))
    finally:
        (vox_png / 'test/empty.mp4').rmdir()
    with pytest.raises(FileNotFoundError, match='vox-png'):
        VoxCelebPairDataset(str(vox_png / 'nowhere'), 'test', str(vox_png / 'attributes.npz'))
    again = run_tool('tools/data/cache_face_attributes.py', vox_png, vox_png / 'attributes.npz')
    assert again.returncode != 0 and '--force' in again.stdout


def test_fomm_augmentation_flips_with_measured_attributes(vox_png, tmp_path):
    """``--mirrored`` measures the flipped frames (MediaPipe: yaw and roll change sign within
    3 degrees, the eyes swap); flipped training pairs carry those attributes; the colour jitter
    is one draw for both frames; a cache without mirrored entries and augmenting the test split
    are named."""
    from mmext.datasets import VoxCelebPairDataset
    from mmext.datasets.voxceleb import jitter_pair
    out = tmp_path / 'attributes.npz'
    done = run_tool('tools/data/cache_face_attributes.py', vox_png, out, '--mirrored')
    assert done.returncode == 0, done.stdout[-3000:]
    cache = np.load(out)
    plain, mirrored = cache['train/id1#a.mp4'], cache['train/id1#a.mp4/mirrored']
    assert mirrored.shape == plain.shape == (3, 9)
    assert np.degrees(np.abs(mirrored[:, [0, 2]] + plain[:, [0, 2]])).max() < 3
    assert np.allclose(mirrored[:, [5, 6]], plain[:, [6, 5]], atol=0.03)   # eye openings
    train = VoxCelebPairDataset(str(vox_png), 'train', str(out), pairs_per_video=4,
                                image_size=64, horizontal_flip=True,
                                colour_jitter=dict(brightness=0.1, contrast=0.1,
                                                   saturation=0.1, hue=0.1))
    np.random.seed(0)
    kinds = set()
    for _ in range(16):
        item = train[0]
        rows = np.abs(item['source_attributes'].numpy() - plain).max(1).min()
        rows_m = np.abs(item['source_attributes'].numpy() - mirrored).max(1).min()
        assert min(rows, rows_m) == 0
        kinds.add('plain' if rows == 0 else 'mirrored')
    assert kinds == {'plain', 'mirrored'}
    # without jitter: both frames are flipped exactly when their attributes are the mirrored ones
    flip_only = VoxCelebPairDataset(str(vox_png), 'train', str(out), pairs_per_video=4,
                                    image_size=64, horizontal_flip=True)
    frames = flip_only.videos[0][0]
    for _ in range(8):
        item = flip_only[0]
        d = item['frame']
        flipped = torch.equal(item['driving_attributes'], torch.from_numpy(mirrored[d]))
        table = mirrored if flipped else plain
        s = int(np.flatnonzero((table == item['source_attributes'].numpy()).all(1))[0])
        for frame, index in ((item['source'], s), (item['driving'], d)):
            raw = flip_only._read(frames[index])
            assert torch.equal(frame, raw.flip(-1) if flipped else raw)
    frame = torch.rand(3, 16, 16) * 2 - 1
    torch.manual_seed(1)
    a, b = jitter_pair(frame, frame.clone(), dict(brightness=0.1, contrast=0.1, saturation=0.1,
                                                  hue=0.1))
    assert torch.equal(a, b) and not torch.allclose(a, frame) and a.abs().max() <= 1
    assert torch.allclose(jitter_pair(frame, frame, {})[0], frame, atol=1e-6)
    with pytest.raises(KeyError, match='--mirrored'):
        VoxCelebPairDataset(str(vox_png), 'train', str(vox_png / 'attributes.npz'),
                            horizontal_flip=True)
    with pytest.raises(ValueError, match='test split takes neither'):
        VoxCelebPairDataset(str(vox_png), 'test', str(out), horizontal_flip=True)
    with pytest.raises(ValueError, match=r"keys \['gamma'\] are unknown"):
        VoxCelebPairDataset(str(vox_png), 'train', str(out), colour_jitter=dict(gamma=0.1))


def test_deca_attribute_cache_feeds_the_dataset(vox_png, tmp_path):
    """``--extractor deca`` writes DECA's 56 per frame (NaN where no face), which the dataset
    reads with ``num_attributes=56``; without the checkpoint the tool says what it needs."""
    from mmext.datasets import VoxCelebPairDataset
    from projects.fadm import DECACoarseEncoder
    torch.manual_seed(0)
    torch.save({'E_flame': DECACoarseEncoder().state_dict()}, tmp_path / 'deca_model.tar')
    out = tmp_path / 'attributes_deca.npz'
    done = run_tool('tools/data/cache_face_attributes.py', vox_png, out, '--extractor', 'deca',
                    '--deca-checkpoint', tmp_path / 'deca_model.tar')
    assert done.returncode == 0, done.stdout[-3000:]
    assert '1 without a face, 56 deca attributes per frame' in done.stdout
    cache = np.load(out)
    assert cache['test/id3#c.mp4'].shape == (4, 56) and np.isnan(cache['test/id3#c.mp4'][3]).all()
    assert np.isfinite(cache['train/id1#a.mp4']).all()
    assert np.abs(np.diff(cache['train/id1#a.mp4'], axis=0)).max() > 0    # frames differ
    test = VoxCelebPairDataset(str(vox_png), 'test', str(out), num_attributes=56, image_size=64)
    assert len(test) == 3 and test[0]['source_attributes'].shape == (56, )
    refused = run_tool('tools/data/cache_face_attributes.py', vox_png, tmp_path / 'x.npz',
                       '--extractor', 'deca')
    assert refused.returncode != 0 and 'needs --deca-checkpoint' in refused.stdout


def test_lpips_reads_local_alexnet_weights(tmp_path):
    from torchvision.models import alexnet

    from mmext.evaluation.animation import build_lpips
    torch.manual_seed(0)
    features = alexnet(weights=None).features
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()},
               tmp_path / 'alexnet.pth')
    model = build_lpips(str(tmp_path / 'alexnet.pth'))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    # the LPIPS backbone is torchvision's AlexNet with the written weights
    assert torch.allclose(model.net.slice2(model.net.slice1(x)), features[:5].eval()(x),
                          atol=1e-5)
    metric = AnimationMetric(lpips_alexnet=str(tmp_path / 'alexnet.pth'))
    frames = torch.rand(2, 1, 32, 32) * 2 - 1
    metric.process({}, [dict(pred=f[None], gt=f, coarse=-f) for f in frames])
    res = metric.compute_metrics(metric.results)
    assert res['lpips_alex'] < 1e-6 < res['coarse_lpips_alex']
    with pytest.raises(FileNotFoundError, match='alexnet-owt-7be5be79.pth'):
        build_lpips(str(tmp_path / 'none.pth'))
    torch.save({'features.0.weight': features[0].weight}, tmp_path / 'partial.pth')
    with pytest.raises(ValueError, match='not a torchvision AlexNet checkpoint'):
        build_lpips(str(tmp_path / 'partial.pth'))


def test_face_motion_metric_on_portrait_frames():
    """AKD / MKR / AED with MediaPipe's landmarks: identical frames 0; a frame moved by 6 pixels
    gives an AKD of 6 +- 1.5 pixels; a black generated frame is a missing face."""
    from skimage import data

    from projects.fadm import FaceMotionMetric
    photo = torch.from_numpy(data.astronaut()[:256, 100:356].copy()).permute(2, 0, 1)
    frame = photo.float() / 127.5 - 1
    moved = torch.roll(frame, shifts=6, dims=2)
    black = torch.full_like(frame, -1)
    metric = FaceMotionMetric()
    metric.process({}, [dict(pred=frame[None], gt=frame, coarse=moved),
                        dict(pred=black[None], gt=frame, coarse=frame)])
    res = metric.compute_metrics(metric.results)
    assert res['akd_mediapipe468'] < 1e-6 and res['aed_mediapipe_attr_l1'] < 1e-6
    assert res['mkr_mediapipe468'] == 0.5 and res['coarse_mkr_mediapipe468'] == 0
    # coarse: one frame moved by 6 px, one identical
    assert abs(res['coarse_akd_mediapipe468'] - 3.0) < 0.75
    assert res['num_frames_without_face'] == 0


# ------------------------------------------------------------------- FOMM animator
SMALL_FOMM = dict(
    kp_detector=dict(num_kp=4, block_expansion=8, max_features=32, num_blocks=3,
                     scale_factor=0.5),
    generator=dict(num_kp=4, block_expansion=8, max_features=32, num_down_blocks=2,
                   num_bottleneck_blocks=1, dense_motion_params=dict(
                       block_expansion=8, max_features=32, num_blocks=3, scale_factor=0.5)))


def with_running_statistics(model):
    """Non-trivial BatchNorm running statistics, so that a checkpoint that loses them shows."""
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_fomm_vox256_has_the_released_layout():
    """FOMM's vox-256 networks: key counts, parameter counts and shapes of the released
    kp_detector and generator (num_batches_tracked included), as derived from the released
    code's module definitions and config/vox-256.yaml by reading them (not from the .pth.tar,
    which is not on this machine)."""
    from projects.fadm import FOMMAnimator
    model = FOMMAnimator()
    kp, gen = model.kp_detector.state_dict(), model.generator.state_dict()
    assert (len(kp), len(gen)) == (75, 196)
    count = [sum(p.numel() for p in m.parameters()) for m in (model.kp_detector, model.generator)]
    assert count == [14215368, 45575391]
    expected = {'kp.weight': (10, 35, 7, 7), 'jacobian.weight': (40, 35, 7, 7),
                'down.weight': (3, 1, 13, 13),
                'predictor.encoder.down_blocks.4.conv.weight': (1024, 512, 3, 3),
                'predictor.decoder.up_blocks.1.conv.weight': (256, 1024, 3, 3)}
    assert all(tuple(kp[k].shape) == v for k, v in expected.items())
    expected = {'dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight':
                (128, 44, 3, 3), 'dense_motion_network.mask.weight': (11, 108, 7, 7),
                'dense_motion_network.occlusion.weight': (1, 108, 7, 7),
                'first.conv.weight': (64, 3, 7, 7), 'bottleneck.r5.norm2.running_var': (256, ),
                'up_blocks.1.conv.weight': (64, 128, 3, 3), 'final.weight': (3, 64, 7, 7)}
    assert all(tuple(gen[k].shape) == v for k, v in expected.items())


def test_fomm_checkpoint_in_its_layout_converts(tmp_path):
    from projects.fadm import FOMMAnimator
    from projects.fadm.convert import fomm_to_mmext
    torch.manual_seed(0)
    source = with_running_statistics(FOMMAnimator(**SMALL_FOMM))
    kp = {f'module.{k}': v for k, v in source.kp_detector.state_dict().items()
          if not k.endswith('num_batches_tracked')}           # DataParallel, torch < 0.4.1
    torch.save({'kp_detector': kp, 'generator': source.generator.state_dict(), 'epoch': 99,
                'optimizer_generator': torch.optim.Adam(
                    source.generator.parameters()).state_dict()}, tmp_path / 'fomm.pth.tar')
    loaded = FOMMAnimator(**SMALL_FOMM, checkpoint=str(tmp_path / 'fomm.pth.tar'))
    s, d = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        out = loaded(s, d)
        assert torch.equal(out, source.eval()(s, d))
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    with pytest.raises(ValueError, match='does not fit'):
        FOMMAnimator(**dict(SMALL_FOMM, kp_detector=dict(SMALL_FOMM['kp_detector'], num_kp=5)),
                     checkpoint=str(tmp_path / 'fomm.pth.tar'))
    with pytest.raises(ValueError, match='not a FOMM checkpoint'):
        fomm_to_mmext({'state_dict': {}}, loaded)
    with pytest.raises(FileNotFoundError, match='vox-cpk'):
        FOMMAnimator(checkpoint=str(tmp_path / 'none.pth.tar'))


def test_production_config_matches_the_spec():
    """The merged FOMM + FADM config against spec 11.3-11.5."""
    cfg = Config.fromfile(REPO / 'configs/fadm/fadm_fomm_256_voxceleb.py')
    schedule = cfg.model.scheduler.from_config
    assert (schedule.num_train_timesteps, schedule.beta_schedule, schedule.beta_start,
            schedule.beta_end, schedule.clip_sample) == (100, 'linear', 1e-3, 0.2, False)
    assert cfg.model.sample_scheduler.cls == 'DDIMScheduler'
    assert cfg.model.sampling == dict(num_steps=100, eta=1.0, seed=0)
    unet = cfg.model.unet.from_config
    assert (unet.in_channels, unet.block_out_channels, unet.layers_per_block) == (
        6, (64, 128, 256, 256, 512, 512), 3)
    assert unet.down_block_types[4] == 'AttnDownBlock2D'           # 256 / 2^4 = 16 x 16
    assert cfg.model.agcn.scales == (32, 64, 128) and cfg.model.agcn.lowpass_size == 32
    assert cfg.optim_wrapper.optimizer == dict(type='Adam', lr=2e-4, betas=(0.0, 0.9))
    assert cfg.train_dataloader.batch_size == 5 and cfg.train_cfg.max_epochs == 100
    assert cfg.train_dataloader.dataset.pairs_per_video == 75
    assert cfg.model.animator.type == 'mmext.FOMMAnimator'
    # DECA's expression 50 + pose 6 (spec 11.1) in the AGCN and both datasets
    assert cfg.model.agcn.num_attributes == 56
    assert {d.dataset.num_attributes for d in (cfg.train_dataloader, cfg.test_dataloader)} == {56}
    assert 'mmext.IdentitySimilarityMetric' in [m.type for m in cfg.test_evaluator]
    train = cfg.train_dataloader.dataset                      # FOMM's vox-256 augmentation
    assert train.horizontal_flip and train.colour_jitter == dict(
        brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1)
    light = Config.fromfile(REPO / 'configs/fadm/fadm_fomm-mediapipe_256_voxceleb.py')
    assert light.model.agcn.num_attributes == 9
    for loader in (light.train_dataloader, light.test_dataloader):
        assert loader.dataset.num_attributes == 9
        assert loader.dataset.attributes_file == 'data/vox-png/attributes.npz'
    assert light.train_dataloader.dataset.pairs_per_video == 75


def test_animation_metric_forms_videos_only_from_sequence_ids():
    frames = [torch.full((1, 12, 12), v) for v in (-1.0, 1.0)]
    metric = AnimationMetric()
    metric.process({}, [dict(pred=f[None], gt=-f) for f in frames])     # no sequence ids
    res = metric.compute_metrics(metric.results)
    assert 'tc_l1' not in res and res['l1'] == 1


# ------------------------------------------------------------------ face-vid2vid animator
SMALL_FACEVID2VID = dict(
    kp_detector=dict(num_kp=4, block_expansion=8, max_features=32, num_blocks=3,
                     reshape_channel=128, reshape_depth=4, scale_factor=0.5),
    he_estimator=dict(num_kp=4, block_expansion=16),
    generator=dict(num_kp=4, block_expansion=8, max_features=32, num_down_blocks=2,
                   reshape_channel=8, reshape_depth=4, num_resblocks=1, spade_hidden=16,
                   dense_motion_params=dict(block_expansion=8, max_features=32, num_blocks=3,
                                            compress=2)))


def test_facevid2vid_vox256_spade_has_the_released_layout():
    """The re-implementation's vox-256-spade networks: key counts, parameter counts and shapes
    as derived from its module definitions and config by reading them (the .pth.tar is not on
    this machine)."""
    from projects.fadm import FaceVid2VidAnimator
    model = FaceVid2VidAnimator()
    parts = (model.kp_detector, model.he_estimator, model.generator)
    assert [len(p.state_dict()) for p in parts] == [75, 402, 386]
    assert [sum(q.numel() for q in p.parameters()) for p in parts] == [
        41940047, 30254838, 100988176]
    kp, he, gen = (p.state_dict() for p in parts)
    expected = {'predictor.conv.weight': (16384, 1024, 1, 1),
                'predictor.up_blocks.up0.conv.weight': (512, 1024, 3, 3, 3),
                'kp.weight': (15, 32, 3, 3, 3), 'down.weight': (3, 1, 13, 13)}
    assert {k: tuple(kp[k].shape) for k in expected} == expected
    expected = {'block2.skip.weight': (512, 512, 1, 1), 'block5.b5_4.conv2.weight':
                (256, 256, 3, 3), 'fc_roll.weight': (66, 2048), 'fc_exp.weight': (45, 2048)}
    assert {k: tuple(he[k].shape) for k in expected} == expected
    expected = {'dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight':
                (64, 80, 3, 3, 3), 'dense_motion_network.mask.weight': (16, 112, 7, 7, 7),
                'dense_motion_network.occlusion.weight': (1, 1792, 7, 7),
                'first.conv.weight': (64, 3, 3, 3), 'resblocks_3d.3dr5.conv2.weight':
                (32, 32, 3, 3, 3), 'decoder.G_middle_5.norm_1.mlp_gamma.weight':
                (512, 128, 3, 3), 'decoder.up_0.conv_s.weight_orig': (256, 512, 1, 1),
                'decoder.up_1.conv_1.weight_v': (576, ), 'decoder.conv_img.weight':
                (3, 64, 3, 3)}
    assert {k: tuple(gen[k].shape) for k in expected} == expected
    assert 'decoder.up_0.conv_s.bias' not in gen


def test_facevid2vid_head_pose_math_against_hand_cases():
    from projects.fadm.facevid2vid import bins_to_degrees, rotation_matrix, transform_keypoints
    peaked = torch.full((3, 66), -1e4)
    peaked[0, 33], peaked[1, 63], peaked[2, 3] = 0, 0, 0        # 0, 90 and -90 degrees
    assert torch.allclose(bins_to_degrees(peaked), torch.tensor([0., 90., -90.]))
    assert bins_to_degrees(torch.zeros(1, 66)).item() == pytest.approx(-1.5)   # mean bin 32.5
    zero = torch.zeros(1)
    quarter = torch.full((1, ), 90.)            # the checkpoint's 3.14: cos 90 deg = 8e-4
    x = torch.tensor([1., 0, 0])
    assert torch.allclose(rotation_matrix(quarter, zero, zero)[0] @ x,
                          torch.tensor([0., 0, -1]), atol=1e-3)      # yaw turns x into -z
    assert torch.allclose(rotation_matrix(zero, zero, quarter)[0] @ x,
                          torch.tensor([0., 1, 0]), atol=1e-3)       # roll turns x into y
    y = torch.tensor([0., 1, 0])
    assert torch.allclose(rotation_matrix(zero, quarter, zero)[0] @ y,
                          torch.tensor([0., 0, 1]), atol=1e-3)       # pitch turns y into z
    yaw, pitch, roll = torch.tensor([20.]), torch.tensor([-30.]), torch.tensor([45.])
    rot = rotation_matrix(yaw, pitch, roll)[0]
    assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-6)
    # the order R_x(pitch) R_y(yaw) R_z(roll), not another one
    assert torch.allclose(rot, rotation_matrix(zero, pitch, zero)[0] @
                          rotation_matrix(yaw, zero, zero)[0] @
                          rotation_matrix(zero, zero, roll)[0], atol=1e-6)
    assert not torch.allclose(rot, rotation_matrix(zero, zero, roll)[0] @
                              rotation_matrix(yaw, zero, zero)[0] @
                              rotation_matrix(zero, pitch, zero)[0], atol=1e-3)
    canonical = torch.randn(2, 4, 3)
    pose = {'yaw': peaked[:1].expand(2, -1), 'pitch': peaked[:1].expand(2, -1),
            'roll': peaked[:1].expand(2, -1), 't': torch.tensor([[0.1, 0.2, 0.3]]).expand(2, -1),
            'exp': torch.arange(24.).view(2, 12)}
    assert torch.allclose(transform_keypoints(canonical, pose),
                          canonical + pose['t'][:, None] + pose['exp'].view(2, 4, 3))
    pose['yaw'] = peaked[1:2].expand(2, -1)                                   # 90 degrees
    turned = rotation_matrix(torch.full((2, ), 90.), torch.zeros(2), torch.zeros(2))
    assert torch.allclose(transform_keypoints(canonical, pose),
                          torch.einsum('bmp,bkp->bkm', turned, canonical) + pose['t'][:, None] +
                          pose['exp'].view(2, 4, 3), atol=1e-5)
    # the checkpoint's layer fc_roll is the yaw head
    from projects.fadm.facevid2vid import HeadPoseExpressionEstimator
    estimator = HeadPoseExpressionEstimator(num_kp=4, block_expansion=16).eval()
    with torch.no_grad():
        for head in (estimator.fc_roll, estimator.fc_pitch, estimator.fc_yaw):
            head.weight.zero_()
            head.bias.zero_()
        estimator.fc_roll.bias[63] = 1e4
        out = estimator(torch.rand(1, 3, 64, 64))
    assert bins_to_degrees(out['yaw']).item() == pytest.approx(90)
    assert bins_to_degrees(out['roll']).item() == pytest.approx(-1.5)


def test_facevid2vid_checkpoint_in_its_layout_converts(tmp_path):
    from projects.fadm import FaceVid2VidAnimator
    from projects.fadm.convert import facevid2vid_to_mmext
    torch.manual_seed(0)
    source = with_running_statistics(FaceVid2VidAnimator(**SMALL_FACEVID2VID))
    he = {f'module.{k}': v for k, v in source.he_estimator.state_dict().items()}
    torch.save({'kp_detector': source.kp_detector.state_dict(), 'he_estimator': he,
                'generator': source.generator.state_dict(), 'discriminator': {}, 'epoch': 189,
                'optimizer_generator': torch.optim.Adam(
                    source.generator.parameters()).state_dict()}, tmp_path / 'fv2v.pth.tar')
    loaded = FaceVid2VidAnimator(**SMALL_FACEVID2VID, checkpoint=str(tmp_path / 'fv2v.pth.tar'))
    s, d = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        out = loaded(s, d)
        assert torch.equal(out, source.eval()(s, d))
        kp_source, kp_driving = loaded.keypoints((s + 1) / 2, (d + 1) / 2)
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    assert kp_source.shape == (2, 4, 3) and not torch.allclose(kp_source, kp_driving)
    # spectral normalisation's stored vectors were loaded, not re-drawn
    assert torch.equal(loaded.generator.decoder.up_1.conv_0.weight_u,
                       source.generator.decoder.up_1.conv_0.weight_u)
    with pytest.raises(ValueError, match='does not fit.*non-SPADE'):
        FaceVid2VidAnimator(**dict(SMALL_FACEVID2VID, he_estimator=dict(num_kp=4)),
                            checkpoint=str(tmp_path / 'fv2v.pth.tar'))
    with pytest.raises(ValueError, match=r"not a face-vid2vid checkpoint: no \['he_estimator'\]"):
        facevid2vid_to_mmext({'kp_detector': {}, 'generator': {}}, loaded)
    with pytest.raises(FileNotFoundError, match='00000189-checkpoint'):
        FaceVid2VidAnimator(checkpoint=str(tmp_path / 'none.pth.tar'))


def test_facevid2vid_production_config_changes_only_the_animator():
    fomm = Config.fromfile(REPO / 'configs/fadm/fadm_fomm_256_voxceleb.py')
    cfg = Config.fromfile(REPO / 'configs/fadm/fadm_facevid2vid_256_voxceleb.py')
    assert cfg.model.animator == dict(
        type='mmext.FaceVid2VidAnimator',
        checkpoint='checkpoints/facevid2vid/00000189-checkpoint.pth.tar')
    for key in ('agcn', 'unet', 'scheduler', 'sample_scheduler', 'sampling'):
        assert cfg.model[key] == fomm.model[key]
    assert cfg.train_dataloader == fomm.train_dataloader
    assert cfg.test_evaluator == fomm.test_evaluator and cfg.train_cfg == fomm.train_cfg


def test_long_demo_config_changes_only_the_schedule():
    demo = Config.fromfile(REPO / 'configs/fadm/fadm_demo_moving-fashion.py')
    long = Config.fromfile(REPO / 'configs/fadm/fadm-long_demo_moving-fashion.py')
    assert demo.train_cfg.max_iters == 2000
    assert long.train_cfg.max_iters == long.train_cfg.val_interval == 6000
    assert long.default_hooks.checkpoint.interval == 2000
    assert long.model == demo.model and long.optim_wrapper == demo.optim_wrapper
    assert long.param_scheduler == demo.param_scheduler     # warm-up only: a resume continues
    assert long.train_dataloader == demo.train_dataloader and long.test_cfg == demo.test_cfg

# ------------------------------------------------------------------- DECA attributes
def test_deca_encoder_layout_code_order_and_checkpoint(tmp_path):
    """DECA's E_flame: ResNet-50 without fc + 2048-1024-236 (322 entries, 25,848,108
    parameters as read from its code); a deca_model.tar the test writes loads strictly; the
    code splits as shape 100, tex 50, exp 50, pose 6, cam 3, light 27."""
    from projects.fadm import DECACoarseEncoder
    from projects.fadm.deca import split_code
    torch.manual_seed(0)
    source = with_running_statistics(DECACoarseEncoder())
    state = source.state_dict()
    assert len(state) == 322 and sum(p.numel() for p in source.parameters()) == 25848108
    assert tuple(state['layers.2.weight'].shape) == (236, 1024) and 'encoder.fc.weight' not in state
    with torch.no_grad():                       # the head outputs its bias: 0, 1, ..., 235
        source.layers[2].weight.zero_()
        source.layers[2].bias.copy_(torch.arange(236.))
    torch.save({'E_flame': source.state_dict(), 'E_detail': {}, 'D_detail': {}},
               tmp_path / 'deca_model.tar')
    loaded = DECACoarseEncoder(str(tmp_path / 'deca_model.tar'))
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        code = loaded(x)
        assert torch.equal(code, source.eval()(x))
    parts = split_code(code)
    assert torch.equal(parts['exp'][0], torch.arange(150., 200.))
    assert torch.equal(parts['pose'][0], torch.arange(200., 206.))
    assert parts['light'].shape == (2, 9, 3) and parts['light'][0, 0, 2] == 211
    with pytest.raises(ValueError, match=r'takes \(B, 3, 224, 224\) crops'):
        loaded(torch.rand(1, 3, 256, 256))
    del state['layers.2.bias']
    torch.save({'E_flame': state}, tmp_path / 'partial.tar')
    with pytest.raises(ValueError, match=r"does not fit.*missing \['layers.2.bias'\]"):
        DECACoarseEncoder(str(tmp_path / 'partial.tar'))
    torch.save({'state_dict': {}}, tmp_path / 'other.tar')
    with pytest.raises(ValueError, match='not a DECA checkpoint: no E_flame'):
        DECACoarseEncoder(str(tmp_path / 'other.tar'))
    with pytest.raises(FileNotFoundError, match='deca_model.tar'):
        DECACoarseEncoder(str(tmp_path / 'none.tar'))


def test_deca_attributes_crop_the_astronaut_like_deca(tmp_path):
    """The crop from MediaPipe's points that bound the 68-point layout: a 224 x 224 square with
    the nose tip within 12 pixels of the centre and the outer eye corners 0.4-0.6 of the side
    apart (a face box x 1.375, DECA's test-time crop); the attribute vector is [exp 50, pose 6];
    68 landmarks of another shape are named."""
    from skimage import data

    from projects.fadm import DECACoarseEncoder, DECAFaceAttributes, MediaPipeFaceAttributes
    torch.save({'E_flame': DECACoarseEncoder().state_dict()}, tmp_path / 'deca_model.tar')
    deca = DECAFaceAttributes(str(tmp_path / 'deca_model.tar'))
    photo = data.astronaut()
    found = deca(photo)
    crop = found['crop']
    assert crop.shape == (224, 224, 3) and 0 <= crop.min() and crop.max() <= 1
    mesh = MediaPipeFaceAttributes().landmarks((crop * 255).round().astype(np.uint8))
    assert np.abs(mesh[1, :2] - 112).max() < 12
    assert 0.4 < np.linalg.norm(mesh[263, :2] - mesh[33, :2]) / 224 < 0.6
    vector = deca.vector(photo)
    assert vector.shape == (56, ) and np.isfinite(vector).all()
    assert np.allclose(vector, np.concatenate([found['expression'], found['pose']]), atol=1e-6)
    with pytest.raises(ValueError, match=r'landmarks68 must be \(68, 2\)'):
        deca(photo, landmarks68=np.zeros((5, 2)))
    deca.close()


# ------------------------------------------------------------------------- CSIM
def test_arcface_layouts_and_an_fp16_backbone_file(tmp_path):
    """insightface's iresnet50 / iresnet100: 475 / 925 entries, 43,590,848 / 65,156,160
    parameters (read from its code); an fp16 backbone.pth (a plain state dict, as its release)
    loads as float32; another depth is named."""
    from projects.fadm import ArcFaceIResNet
    r50 = ArcFaceIResNet('r50')
    assert len(r50.state_dict()) == 475 and sum(p.numel() for p in r50.parameters()) == 43590848
    r100 = ArcFaceIResNet('r100')
    assert len(r100.state_dict()) == 925
    assert sum(p.numel() for p in r100.parameters()) == 65156160
    assert tuple(r100.state_dict()['layer3.29.conv2.weight'].shape) == (256, 256, 3, 3)
    assert tuple(r100.state_dict()['fc.weight'].shape) == (512, 25088)
    torch.manual_seed(0)
    source = with_running_statistics(ArcFaceIResNet('r18')).half().float()
    torch.save(source.half().state_dict(), tmp_path / 'backbone.pth')
    loaded = ArcFaceIResNet('r18', checkpoint=str(tmp_path / 'backbone.pth'))
    assert loaded.fc.weight.dtype == torch.float32
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), source.float().eval()(x))
    torch.save({f'module.{k}': v for k, v in source.state_dict().items()},
               tmp_path / 'parallel.pth')                                    # DataParallel save
    wrapped = ArcFaceIResNet('r18', checkpoint=str(tmp_path / 'parallel.pth'))
    assert torch.equal(wrapped.fc.weight, source.fc.weight)
    with pytest.raises(ValueError, match=r'does not fit the configured ArcFaceIResNet.*another '
                                         'depth'):
        ArcFaceIResNet('r34', checkpoint=str(tmp_path / 'backbone.pth'))
    with pytest.raises(ValueError, match="unknown ArcFace depth 'r101'"):
        ArcFaceIResNet('r101')
    with pytest.raises(ValueError, match=r'aligned \(B, 3, 112, 112\) faces'):
        loaded(torch.rand(1, 3, 128, 128))


def test_arcface_alignment_and_csim_on_the_astronaut(tmp_path):
    """Points on the template leave a 112 x 112 image as it is; the astronaut's five MediaPipe
    points land within 8 pixels of the template after alignment; CSIM of a frame with itself is
    1, a black generated frame is counted as without a face, a mirrored face is below 1."""
    from skimage import data

    from projects.fadm import ArcFaceIResNet, IdentitySimilarityMetric, MediaPipeFaceAttributes
    from projects.fadm.identity import ARCFACE_TEMPLATE, align_arcface, five_points
    image = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    assert np.abs(align_arcface(image, ARCFACE_TEMPLATE).astype(int) - image).max() <= 1
    photo = data.astronaut()
    aligned = align_arcface(photo, five_points(MediaPipeFaceAttributes().landmarks(photo)))
    big = np.ascontiguousarray(np.kron(aligned, np.ones((2, 2, 1), dtype=np.uint8)))
    points = five_points(MediaPipeFaceAttributes().landmarks(big)) / 2
    assert np.abs(points - ARCFACE_TEMPLATE).max() < 8
    torch.manual_seed(0)
    torch.save(ArcFaceIResNet('r18').state_dict(), tmp_path / 'backbone.pth')
    metric = IdentitySimilarityMetric(str(tmp_path / 'backbone.pth'), depth='r18')
    frame = torch.from_numpy(photo[:256, 100:356].copy()).permute(2, 0, 1).float() / 127.5 - 1
    black = torch.full_like(frame, -1)
    metric.process({}, [dict(source=frame, pred=frame[None], coarse=frame.flip(-1)),
                        dict(source=frame, pred=black[None], coarse=frame)])
    res = metric.compute_metrics(metric.results)
    assert res['csim_arcface'] == pytest.approx(1.0, abs=1e-5)
    assert res['csim_frames_without_face'] == 1
    assert res['coarse_csim_arcface'] < 1 - 1e-4
