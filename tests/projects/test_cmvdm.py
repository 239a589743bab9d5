"""CMVDM: simulated fMRI, fMRI datasets on the released layouts, the model's stages and
ControlNet, the reconstruction metrics, and every demo stage through the stock tools."""
import json

import numpy as np
import pytest
import torch

import projects.cmvdm  # noqa: F401  (registers the CMVDM parts)
from mmext.datasets import (
    BOLD5000Dataset,
    GODDataset,
    SimulatedFMRIDataset,
    SimulatorConfig,
    VoxelPad,
    make_simulated_fmri,
)
from mmext.evaluation import ReconstructionMetric, gaussian_ssim, n_way_identification, pixel_pcc
from mmext.evaluation.image_quality import Judge
from mmext.registry import MODELS
from tests.conftest import REPO, TINY_CLIP_CFG, run_tool

TINY_SIM = dict(num_train=24, num_val=8, num_test=10, num_pixel_voxels=2048,
                num_feature_voxels=2048)


@pytest.fixture(scope='module')
def simulated(tmp_path_factory, fashion_mnist_root):
    out = tmp_path_factory.mktemp('simulated_fmri')
    make_simulated_fmri(out, SimulatorConfig(**TINY_SIM, seed=3))
    return out


def test_simulator_is_deterministic_from_its_seed(simulated, tmp_path):
    make_simulated_fmri(tmp_path / 'again', SimulatorConfig(**TINY_SIM, seed=3))
    make_simulated_fmri(tmp_path / 'other', SimulatorConfig(**TINY_SIM, seed=4))
    a, b = np.load(simulated / 'simulated_fmri.npz'), np.load(tmp_path / 'again/simulated_fmri.npz')
    c = np.load(tmp_path / 'other/simulated_fmri.npz')
    assert a['train_voxels'].shape == (24, 4096) and a['test_voxels'].shape == (10, 4096)
    for key in a.files:
        assert np.array_equal(a[key], b[key]), key
    assert not np.allclose(a['train_voxels'], c['train_voxels'])
    assert sorted(np.bincount(a['test_labels'])) == [1] * 10          # one test item per class
    assert json.loads((simulated / 'simulator.json').read_text())['seed'] == 3


def test_simulated_dataset_splits_and_training_statistics(simulated):
    train = SimulatedFMRIDataset(str(simulated), split='train')
    val = SimulatedFMRIDataset(str(simulated), split='val')
    test = SimulatedFMRIDataset(str(simulated), split='test',
                                pipeline=[dict(type='mmext.PackFMRIInputs')])
    assert (len(train), len(val), len(test)) == (24, 8, 10)
    v = np.stack([train[i]['voxels'] for i in range(len(train))])
    assert np.allclose(v.mean(0), 0, atol=1e-5) and np.allclose(v.std(0), 1, atol=1e-3)
    item = test[0]
    assert item['image'].shape == (1, 32, 32) and item['voxels'].shape == (4096, )
    assert -1 <= item['image'].min() < item['image'].max() <= 1
    unlabelled = SimulatedFMRIDataset(str(simulated), split='unlabelled', num_unlabelled=5)
    assert len(unlabelled) == 5 and not unlabelled[0]['has_voxels']
    with pytest.raises(FileNotFoundError, match='make data'):
        SimulatedFMRIDataset(str(simulated / 'nowhere'), split='train')
    with pytest.raises(ValueError, match='split must be'):
        SimulatedFMRIDataset(str(simulated), split='training')


def test_voxel_pad_wraps():
    out = VoxelPad(multiple=4).transform(dict(voxels=np.arange(6.0)))['voxels']
    assert out.tolist() == [0, 1, 2, 3, 4, 5, 0, 1]
    assert len(VoxelPad(4).transform(dict(voxels=np.arange(8.0)))['voxels']) == 8
    assert len(VoxelPad(4, always=True).transform(dict(voxels=np.arange(8.0)))['voxels']) == 12


def test_god_layout(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros(40, bool)
    mask[::2] = True
    np.savez(tmp_path / 'sbj_3.npz', arr_0=rng.normal(size=(30, 40)), arr_1=rng.normal(size=(12, 40)),
             arr_2=rng.normal(size=(4, 40)), arr_3=np.repeat(np.arange(10), 3), VC=mask)
    np.savez(tmp_path / 'images_256.npz', train_images=rng.integers(0, 255, (10, 8, 8, 3), np.uint8),
             test_images=rng.integers(0, 255, (4, 8, 8, 3), np.uint8))
    train = GODDataset(str(tmp_path), split='train', val_fraction=0.2)
    val = GODDataset(str(tmp_path), split='val', val_fraction=0.2)
    test = GODDataset(str(tmp_path), split='test')
    assert (len(train), len(val), len(test)) == (24, 6, 4)             # 2 of 10 images to val
    assert train[0]['voxels'].shape == (20, )                           # the VC mask
    assert not {d['image_id'] for d in train.data_list} & {d['image_id'] for d in val.data_list}
    with pytest.raises(KeyError, match="'V9'"):
        GODDataset(str(tmp_path), roi='V9')
    with pytest.raises(FileNotFoundError, match='images_256.npz'):
        GODDataset(str(tmp_path), subject='sbj_1')


def test_bold5000_layout(tmp_path):
    rng = np.random.default_rng(0)
    betas = tmp_path / 'BOLD5000_GLMsingle_ROI_betas/py'
    betas.mkdir(parents=True)
    for hemi in ('LH', 'RH'):
        np.save(betas / f'CSI1_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_allses_{hemi}EarlyVis.npy',
                rng.normal(size=(8, 3)))
    lists = tmp_path / 'BOLD5000_Stimuli/Stimuli_Presentation_Lists/CSI1/sess01'
    lists.mkdir(parents=True)
    (lists / 'run1.txt').write_text('a.jpg\nb.jpg\nrep_c.jpg\nd.jpg\n')
    (lists / 'run2.txt').write_text('rep_c.jpg\ne.jpg\nf.jpg\ng.jpg\n')
    scene = tmp_path / 'BOLD5000_Stimuli/Scene_Stimuli'
    (scene / 'Presented_Stimuli').mkdir(parents=True)
    (scene / 'repeated_stimuli_113_list.txt').write_text('c.jpg\n')
    np.save(scene / 'Presented_Stimuli/img_dict.npy',
            {f'{n}.jpg': np.full((4, 4, 3), i, np.uint8) for i, n in enumerate('abcdefg')})
    test = BOLD5000Dataset(str(tmp_path), rois=('EarlyVis', ), split='test', zscore=None)
    train = BOLD5000Dataset(str(tmp_path), rois=('EarlyVis', ), split='train', val_fraction=0)
    assert len(test) == 1 and len(train) == 6 and test[0]['voxels'].shape == (6, )
    with pytest.raises(FileNotFoundError, match='LOC'):
        BOLD5000Dataset(str(tmp_path), rois=('LOC', ))
    (lists / 'run2.txt').write_text('rep_c.jpg\ne.jpg\nf.jpg\nh.jpg\n')
    with pytest.raises(KeyError, match="no image in img_dict.npy, e.g. \\['h.jpg'\\]"):
        BOLD5000Dataset(str(tmp_path), rois=('EarlyVis', ))


def test_identification_metric_against_hand_cases():
    gen = torch.Generator().manual_seed(0)
    probs = torch.tensor([[0.05] * 9 + [0.55],            # y* = 9 is the most likely: always
                          [0.5] + [0.4] + [0.1 / 8] * 8,  # y* = 1 second: loses only to class 0
                          [0.0] + [1 / 9] * 9])           # y* = 0 the least likely: never
    y = torch.tensor([9, 1, 0])
    acc = n_way_identification(probs, y, 2, trials=4000, generator=gen)
    assert acc[0] == 1 and acc[2] == 0 and abs(acc[1] - 8 / 9) < 0.02
    assert n_way_identification(probs, y, 10, trials=10, generator=gen)[1] == 0
    with pytest.raises(ValueError, match='2 <= n <= 10'):
        n_way_identification(probs, y, 11, 1, gen)


def test_reconstruction_metric_and_its_pixel_measures():
    from skimage.metrics import structural_similarity
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    ours = gaussian_ssim(x, y)
    ref = [structural_similarity(a[0].numpy(), b[0].numpy(), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0) for a, b in zip(x, y)]
    assert torch.allclose(ours, torch.tensor(ref, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(pixel_pcc(x, x), torch.ones(2))
    # a judge that reads the class off the mean brightness: reconstructions equal to the
    # ground truth are identified always
    judge = Judge(fn=lambda im: torch.nn.functional.one_hot(
        ((im.mean((1, 2, 3)) + 1) * 4.99).long().clamp(0, 9), 10).float() * 10, name='brightness')
    metric = ReconstructionMetric(judge=judge, n_way=(2, 10), trials=5, best_of_k=True)
    gt = torch.linspace(-1, 1, 10)
    outs = [dict(pred=torch.full((2, 1, 12, 12), float(g)), gt=torch.full((1, 12, 12), float(g)))
            for g in gt]
    metric.process({}, outs)
    res = metric.compute_metrics(metric.results)
    assert res['2way_top1'] == 1 and res['10way_top1'] == 1 and res['10way_top1/best_of_K'] == 1
    rgb_x, rgb_y = torch.rand(2, 3, 16, 16) * 255, torch.rand(2, 3, 16, 16) * 255
    ref7 = [structural_similarity(a.numpy(), b.numpy(), data_range=255, channel_axis=0)
            for a, b in zip(rgb_x, rgb_y)]                    # scikit-image's defaults
    assert torch.allclose(gaussian_ssim(rgb_x, rgb_y, 255.0, uniform_window=7),
                          torch.tensor(ref7, dtype=torch.float32), atol=1e-4)
    with pytest.raises(ValueError, match='needs images at least'):
        gaussian_ssim(x[..., :8, :8], y[..., :8, :8])
    with pytest.raises(FileNotFoundError, match='judge checkpoint'):
        ReconstructionMetric(judge=dict(config='x.py', checkpoint='nowhere.pth'))


@pytest.mark.parametrize('to_rgb', [False, True])
def test_judge_from_config_and_checkpoint(tmp_path, to_rgb):
    """The config + checkpoint route of the judge (the demo's): the model's own preprocessor,
    BGR handed to one that swaps channels, the input resized."""
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmpretrain.apis import init_model
    cfg = Config(dict(model=dict(
        type='ImageClassifier', backbone=dict(type='ResNet', depth=18, num_stages=1, strides=(1, ),
                                              dilations=(1, ), out_indices=(0, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=4, in_channels=64),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[120.0, 110.0, 100.0],
                               std=[60.0, 50.0, 40.0], to_rgb=to_rgb))))
    cfg.dump(tmp_path / 'judge.py')
    torch.manual_seed(0)
    model = init_model(cfg, device='cpu').eval()
    save_checkpoint(model.state_dict(), str(tmp_path / 'judge.pth'))
    judge = Judge(str(tmp_path / 'judge.py'), str(tmp_path / 'judge.pth'), input_size=40)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    x = torch.nn.functional.interpolate((images + 1) * 127.5, size=40, mode='bilinear',
                                        align_corners=False)
    mean, std = torch.tensor([120.0, 110.0, 100.0]), torch.tensor([60.0, 50.0, 40.0])
    # whatever the preprocessor's setting, the network sees the RGB images normalised
    expected = model((x - mean[:, None, None]) / std[:, None, None], mode='tensor')
    assert torch.allclose(judge.probs(images), expected.softmax(-1), atol=1e-5)


# ------------------------------------------------------------------------ the model
def tiny_model_cfg(**kwargs) -> dict:
    noise = dict(num_train_timesteps=100, beta_schedule='scaled_linear', beta_start=0.0015,
                 beta_end=0.0195)
    cfg = dict(
        type='mmext.CMVDM',
        encoder=dict(type='mmext.FMRIMAEEncoder', num_voxels=64, patch_size=16, embed_dim=32,
                     depth=1, num_heads=2),
        conditioner=dict(type='mmext.FMRIConditioner', num_tokens=4, embed_dim=32,
                         context_tokens=6, context_dim=16, time_embed_dim=32),
        unet=dict(type='mmext.Diffusers', cls='UNet2DConditionModel', from_config=dict(
            sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
            layers_per_block=1, norm_num_groups=8, cross_attention_dim=16, attention_head_dim=4,
            class_embed_type='identity', down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D'),
            up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D'))),
        scheduler=dict(type='mmext.DiffusersScheduler', cls='DDPMScheduler', from_config=noise),
        sample_scheduler=dict(type='mmext.DiffusersScheduler', cls='DDIMScheduler',
                              from_config=noise),
        sampling=dict(num_steps=3, eta=0.0))
    cfg.update(kwargs)
    return cfg


def tiny_cmvdm(**kwargs):
    return MODELS.build(tiny_model_cfg(**kwargs))


STAGE_B = dict(controlnet=dict(conditioning_channels=1, conditioning_embedding_out_channels=(8, )),
               silhouette=dict(type='mmext.SilhouetteDecoder', num_voxels=64, out_channels=1,
                               channels=8, start_size=2, num_up=2, out_size=8, groups=4),
               residual=dict(type='mmext.ResidualHintNet', num_voxels=64, out_channels=1,
                             hidden=16, start_size=4, sizes=(8, ), channels=(4, )),
               trainable=[r'controlnet\.', r'residual\.'])


def test_controlnet_zero_convolutions_leave_the_unet_alone():
    torch.manual_seed(0)
    model = tiny_cmvdm(**STAGE_B).eval()
    model.sync_controlnet()
    v = torch.randn(2, 64)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 60])
    ctx, tc = model.condition(v)
    with torch.no_grad():
        controlled = model.denoise(x, t, ctx, tc, model.hint(v))
        alone = model.denoise(x, t, ctx, tc, None)
    assert torch.equal(controlled, alone)
    assert torch.equal(model.controlnet.conv_in.weight, model.unet.conv_in.weight)
    assert model.controlnet_synced == 1


def test_stage_b_trains_only_controlnet_and_residual():
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    model = tiny_cmvdm(**STAGE_B)
    assert all(n.startswith(('controlnet.', 'residual.')) for n in model.trainable_names())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    batch = dict(voxels=torch.randn(4, 64), image=torch.rand(4, 1, 8, 8) * 2 - 1)
    # zero convolutions in series: the gradient reaches the ControlNet's output convolutions in
    # step 1, its hint embedding in step 2 and the residual network's zero conv in step 3
    for _ in range(4):
        model.train_step(batch, optim)
    for name, param in model.named_parameters():
        changed = not torch.equal(param, before[name])
        if name.startswith(('controlnet.', 'residual.')):
            continue
        assert param.grad is None and not changed, name     # frozen: no gradient, same weight
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters()
               if n.startswith('residual.'))
    with pytest.raises(ValueError, match='matches no parameter'):
        tiny_cmvdm(trainable=['nothing_here'])


def test_stage_a_trains_the_declared_set_and_sampling_is_seeded():
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    model = tiny_cmvdm(trainable=[r'encoder\.', r'conditioner\.', r'unet\..*attn2\.'])
    names = model.trainable_names()
    assert any('attn2' in n for n in names) and not any('attn1' in n for n in names)
    unet_conv = model.unet.conv_in.weight.detach().clone()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    model.train_step(dict(voxels=torch.randn(4, 64), image=torch.rand(4, 1, 8, 8)), optim)
    assert torch.equal(model.unet.conv_in.weight, unet_conv)
    model.eval()
    batch = dict(voxels=torch.randn(2, 64), image=torch.rand(2, 1, 8, 8), image_id=torch.tensor([4, 7]),
                 label=torch.tensor([1, 2]))
    first, again = model.predict(**batch), model.predict(**batch)
    assert first[0]['pred'].shape == (1, 1, 8, 8)
    assert torch.equal(first[1]['pred'], again[1]['pred'])
    with pytest.raises(ValueError, match=r'\(B, 64\)'):
        model.condition(torch.randn(2, 60))                          # voxel count mismatch


def test_encoder_rejects_unpadded_voxel_counts():
    with pytest.raises(ValueError, match='VoxelPad'):
        MODELS.build(dict(type='mmext.FMRIMAEEncoder', num_voxels=4643, embed_dim=32, depth=1,
                          num_heads=2))


def test_masked_pretraining_hides_three_quarters():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='mmext.FMRIMaskedPretrainer', encoder=dict(
        type='mmext.FMRIMAEEncoder', num_voxels=128, embed_dim=32, depth=1, num_heads=2),
        decoder_dim=16, decoder_depth=1, decoder_heads=2))
    pred, target, mask = model.reconstruct(torch.randn(3, 128))
    assert pred.shape == target.shape == (3, 8, 16) and (mask.sum(1) == 6).all()
    assert model(torch.randn(3, 128), mode='loss')['loss_mae'] > 0


# ------------------------------------------------------------------- the stock tools
def random_judge(work) -> str:
    """The demo judge's network, randomly initialised, as a checkpoint (features for the
    test-time Fréchet distance; nothing is judged on it)."""
    from mmengine.runner import save_checkpoint
    from mmpretrain.apis import init_model
    path = work / 'random_judge.pth'
    if not path.is_file():
        torch.manual_seed(0)
        model = init_model(str(REPO / 'configs/cmvdm/judge_lenet5_fashion-mnist.py'), device='cpu')
        save_checkpoint(model.state_dict(), str(path))
    return str(path)


def stage_options(simulated, tiny_clip_folder, work, iters=1):
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=4', 'val_dataloader.dataset.indices=2',
            'val_evaluator.judge=None', 'test_evaluator.0.judge=None',
            f'test_evaluator.1.judge.checkpoint={random_judge(work)}', 'model.sampling.num_steps=2']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={simulated}', f'{loader}.num_workers=0']
    return opts


def test_every_demo_stage_through_the_stock_tools(simulated, tiny_clip_folder, tmp_path):
    clip = [f'model.clip.model_name=local-dir:{tiny_clip_folder}', 'model.clip_image_size=64',
            f"model.align_head.clip_dim={TINY_CLIP_CFG['embed_dim']}"]
    base = ['train_dataloader.num_workers=0', f'train_dataloader.dataset.data_root={simulated}',
            'default_hooks.logger.interval=1']
    runs = [
        ('fmri-mae_demo_simulated-fmri.py', 'mae',
         base + ['train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1']),
        ('silhouette_demo_encoder_simulated-fmri.py', 'senc',
         base + ['train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1']),
        ('silhouette_demo_decoder_simulated-fmri.py', 'sdec', [
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'train_dataloader.num_workers=0',
            f'train_dataloader.dataset.datasets.0.data_root={simulated}',
            f'train_dataloader.dataset.datasets.1.data_root={simulated}',
            'train_dataloader.dataset.datasets.1.num_unlabelled=8',
            f'val_dataloader.dataset.data_root={simulated}', 'val_dataloader.num_workers=0',
            'val_dataloader.dataset.indices=2', 'val_evaluator.judge=None',
            f'load_from={tmp_path}/senc/epoch_1.pth']),
        ('cmvdm_demo_stage-a_simulated-fmri.py', 'a',
         stage_options(simulated, tiny_clip_folder, tmp_path) + clip +
         [f'model.encoder.init_cfg.checkpoint={tmp_path}/mae/epoch_1.pth']),
        ('cmvdm_demo_stage-b_simulated-fmri.py', 'b',
         stage_options(simulated, tiny_clip_folder, tmp_path) +
         [f'model.encoder.init_cfg.checkpoint={tmp_path}/mae/epoch_1.pth',
          f'model.silhouette_checkpoint={tmp_path}/sdec/epoch_1.pth',
          f'load_from={tmp_path}/a/iter_1.pth']),
    ]
    for config, name, opts in runs:
        done = run_tool('tools/train.py', f'configs/cmvdm/{config}', '--work-dir',
                        tmp_path / name, '--cfg-options', *opts)
        assert done.returncode == 0, f'{config}:\n{done.stdout[-3000:]}'
    done = run_tool('tools/test.py', 'configs/cmvdm/cmvdm_demo_stage-b_simulated-fmri.py',
                    tmp_path / 'b/iter_1.pth', '--work-dir', tmp_path / 'test', '--cfg-options',
                    *stage_options(simulated, tiny_clip_folder, tmp_path),
                    'test_dataloader.dataset.indices=2',
                    f'model.encoder.init_cfg.checkpoint={tmp_path}/mae/epoch_1.pth',
                    f'model.silhouette_checkpoint={tmp_path}/sdec/epoch_1.pth')
    assert done.returncode == 0, done.stdout[-3000:]
    assert 'recon/pcc' in done.stdout and 'recon/ssim_grey-gauss1.5' in done.stdout
    assert 'recon/fd_lenet5-fmnist-fc84' in done.stdout


def test_mindvis_checkpoint_converts_into_cmvdm():
    from mmext.diffusion import diffusers_to_ldm_unet
    from projects.cmvdm.convert import mindvis_to_cmvdm
    torch.manual_seed(0)
    source = tiny_cmvdm()
    mindvis = diffusers_to_ldm_unet(source.unet.state_dict(), source.unet)
    for key, value in source.encoder.state_dict().items():
        mindvis[f'cond_stage_model.mae.{key}'] = value
    mindvis['cond_stage_model.mae.mask_token'] = torch.zeros(1, 1, 32)
    mindvis['cond_stage_model.mae.pos_embed'] = torch.zeros(1, 5, 32)     # cls + 4 patches
    for key, value in source.conditioner.state_dict().items():
        name = key.replace('time_cond.', 'TIME.')
        prefix = 'model.diffusion_model.time_embed_condtion.' if name.startswith('TIME.') \
            else 'cond_stage_model.'
        mindvis[prefix + name.removeprefix('TIME.')] = value
    mindvis['first_stage_model.quantize.embedding.weight'] = torch.zeros(4, 3)
    target = tiny_cmvdm()
    converted = mindvis_to_cmvdm(mindvis, target)
    target.load_state_dict(converted, strict=False)
    for key, value in source.state_dict().items():
        if key.startswith(('unet.', 'encoder.', 'conditioner.')):
            assert torch.equal(target.state_dict()[key], value), key
    wider = tiny_cmvdm(encoder=dict(type='mmext.FMRIMAEEncoder', num_voxels=80, patch_size=16,
                                    embed_dim=32, depth=1, num_heads=2))
    with pytest.raises(ValueError, match='num_voxels'):
        mindvis_to_cmvdm(mindvis, wider)                # another subject's voxel count


def test_mindvis_pretrained_encoder_loads(tmp_path):
    torch.manual_seed(0)
    cfg = dict(type='mmext.FMRIMAEEncoder', num_voxels=64, embed_dim=32, depth=1, num_heads=2)
    source = MODELS.build(cfg)
    state = dict(source.state_dict(), mask_token=torch.zeros(1, 1, 32),
                 pos_embed=torch.zeros(1, 5, 32), **{'decoder_pred.weight': torch.zeros(16, 8)})
    torch.save({'model': state, 'epoch': 3}, tmp_path / 'fmri_encoder.pth')
    target = MODELS.build(cfg)
    # MinD-Vis's positions: a zero row for the class token, then patch j at position j
    assert torch.equal(target.pos_embed[0, 0], torch.zeros(32))
    assert torch.equal(target.pos_embed[0, 1, 16:], torch.ones(16))      # cos(0) = 1
    unused = target.load_mindvis(tmp_path / 'fmri_encoder.pth')
    assert unused == ['decoder_pred.weight', 'mask_token', 'pos_embed']
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items())
    wide = MODELS.build(dict(cfg, embed_dim=48, num_heads=2))
    with pytest.raises(ValueError, match='embed_dim, depth'):
        wide.load_mindvis(tmp_path / 'fmri_encoder.pth')
    torch.save({'model': {'other.weight': torch.zeros(2)}}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='not a MinD-Vis fMRI MAE checkpoint'):
        target.load_mindvis(tmp_path / 'other.pth')


def test_mindvis_converter_tool_writes_stage_a_init_and_vq(tmp_path):
    from diffusers import VQModel

    from mmext.diffusion import diffusers_to_ldm_unet, diffusers_to_ldm_vq
    from tests.diffusion.test_diffusion import TINY_VQ
    torch.manual_seed(0)
    source = tiny_cmvdm()
    state = diffusers_to_ldm_unet(source.unet.state_dict(), source.unet)
    state.update({f'cond_stage_model.mae.{k}': v for k, v in source.encoder.state_dict().items()})
    for key, value in source.conditioner.state_dict().items():
        state[('model.diffusion_model.time_embed_condtion.' + key[len('time_cond.'):])
              if key.startswith('time_cond.') else f'cond_stage_model.{key}'] = value
    vq = VQModel.from_config(TINY_VQ)
    state.update(diffusers_to_ldm_vq(vq.state_dict(), vq))
    torch.save({'model_state_dict': state, 'config': {'note': 'MinD-Vis pickles a class here'}},
               tmp_path / 'finetuned.pth')
    (tmp_path / 'tiny.py').write_text(f'model = {tiny_model_cfg()!r}\nvq_f4 = {TINY_VQ!r}\n')
    done = run_tool('tools/model_converters/mindvis_to_cmvdm.py', tmp_path / 'finetuned.pth',
                    tmp_path / 'tiny.py', tmp_path / 'init.pth', '--vq-out', tmp_path / 'vqvae')
    assert done.returncode == 0, done.stdout[-2000:]
    target = tiny_cmvdm()
    target.load_state_dict(torch.load(tmp_path / 'init.pth')['state_dict'], strict=False)
    assert torch.equal(target.unet.conv_in.weight, source.unet.conv_in.weight)
    loaded = VQModel.from_pretrained(tmp_path / 'vqvae')
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in vq.state_dict().items())
    again = run_tool('tools/model_converters/mindvis_to_cmvdm.py', tmp_path / 'finetuned.pth',
                     tmp_path / 'tiny.py', tmp_path / 'init.pth')
    assert again.returncode != 0 and '--force' in again.stdout


def test_clip_targets_are_cached_per_training_image(tiny_clip_folder):
    torch.manual_seed(0)
    model = tiny_cmvdm(align_head=dict(type='mmext.CLIPAlignHead', context_tokens=6,
                                       context_dim=16, clip_dim=TINY_CLIP_CFG['embed_dim'],
                                       hidden=16),
                       clip=dict(model_name=f'local-dir:{tiny_clip_folder}'), clip_image_size=64)
    first = model.clip_target(torch.rand(2, 1, 8, 8) * 2 - 1, torch.tensor([3, -1]))
    other = torch.rand(2, 1, 8, 8) * 2 - 1
    again = model.clip_target(other, torch.tensor([3, -1]))
    assert sorted(model._clip_cache) == [3]                       # -1: no id, never cached
    assert torch.equal(again[0], first[0])                        # the cached target
    assert torch.allclose(again[1], model.clip_target(other[1:])[0])
    model.cache_clip_targets = False
    assert not torch.equal(model.clip_target(other, torch.tensor([3, -1]))[0], first[0])
