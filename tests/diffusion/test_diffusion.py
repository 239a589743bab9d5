"""mmext.diffusion: config-built diffusers parts, training targets, fixed-noise sampling and the
CompVis checkpoint layout."""
import pytest
import torch

from mmext.diffusion import (
    FixedNoise,
    checkpoint_state_dict,
    diffusers_to_ldm_unet,
    ldm_to_diffusers_unet,
    noisy_batch,
    sample,
)
from mmext.registry import MODELS

TINY_COND_UNET = dict(
    sample_size=8, in_channels=3, out_channels=3, block_out_channels=(16, 32, 32),
    layers_per_block=2, norm_num_groups=8, cross_attention_dim=16, attention_head_dim=4,
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'))
TINY_UNET = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32),
                 layers_per_block=1, norm_num_groups=8,
                 down_block_types=('DownBlock2D', 'AttnDownBlock2D'),
                 up_block_types=('AttnUpBlock2D', 'UpBlock2D'))


def build(cls, **cfg):
    return MODELS.build(dict(type='mmext.Diffusers', cls=cls, **cfg))


def scheduler(cls='DDIMScheduler', **cfg):
    return MODELS.build(dict(type='mmext.DiffusersScheduler', cls=cls,
                             from_config=dict(dict(num_train_timesteps=100), **cfg)))


def test_builders_from_config_and_local_folder(tmp_path):
    torch.manual_seed(0)
    unet = build('UNet2DModel', from_config=TINY_UNET)
    assert type(unet).__name__ == 'UNet2DModel' and unet.config.block_out_channels == (16, 32)
    unet.save_pretrained(tmp_path / 'unet')
    again = build('UNet2DModel', from_pretrained=str(tmp_path), subfolder='unet')
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(),
                                                 again.state_dict().values()))
    sched = scheduler(beta_schedule='scaled_linear', prediction_type='v_prediction')
    assert sched.config.prediction_type == 'v_prediction' and type(sched).__name__ == 'DDIMScheduler'
    sched.save_pretrained(tmp_path / 'scheduler')
    assert MODELS.build(dict(type='mmext.DiffusersScheduler', cls='DDIMScheduler',
                             from_pretrained=str(tmp_path), subfolder='scheduler')
                        ).config.num_train_timesteps == 100


@pytest.mark.parametrize('cfg, error, words', [
    (dict(cls='UNet3000'), ValueError, 'UNet2DModel'),                       # unknown class
    (dict(cls='DDIMScheduler', from_config={}), ValueError, 'ModelMixin'),   # a scheduler as model
    (dict(cls='UNet2DModel'), ValueError, 'exactly one'),
    (dict(cls='UNet2DModel', from_config={}, from_pretrained='x'), ValueError, 'exactly one'),
    (dict(cls='UNet2DModel', from_pretrained='no/such/folder'), FileNotFoundError,
     'ldm_to_diffusers'),
])
def test_builder_bad_input(cfg, error, words):
    with pytest.raises(error, match=words):
        MODELS.build(dict(type='mmext.Diffusers', **cfg))


def test_noisy_batch_targets_follow_the_prediction_type():
    x0 = torch.randn(4, 1, 8, 8)
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 10, 50, 99])
    for kind in ('epsilon', 'sample', 'v_prediction'):
        sched = scheduler('DDPMScheduler', prediction_type=kind)
        batch = noisy_batch(sched, x0, noise, t)
        a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
        assert torch.allclose(batch.noisy, a.sqrt() * x0 + (1 - a).sqrt() * noise, atol=1e-6)
        want = dict(epsilon=noise, sample=x0,
                    v_prediction=a.sqrt() * noise - (1 - a).sqrt() * x0)[kind]
        assert torch.allclose(batch.target, want, atol=1e-6)
    drawn = noisy_batch(sched, x0, generator=torch.Generator().manual_seed(0))
    assert drawn.timesteps.shape == (4, ) and 0 <= drawn.timesteps.min() <= drawn.timesteps.max() < 100
    with pytest.raises(ValueError, match='must match'):
        noisy_batch(sched, x0, noise[:2], t)


def test_sampling_shares_noise_across_the_batch():
    torch.manual_seed(0)
    unet = build('UNet2DModel', from_config=TINY_UNET).eval()
    sched = scheduler(beta_schedule='linear')
    noise = FixedNoise.draw((1, 8, 8), num_steps=5, seed=3)
    assert torch.equal(noise.initial, FixedNoise.draw((1, 8, 8), 5, seed=3).initial)
    shift = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1, 1)  # the third sample's "condition"

    def denoiser(x, t):
        return unet(x + shift, t).sample

    out = sample(denoiser, sched, 3, noise, num_steps=5, eta=1.0)
    assert out.shape == (3, 1, 8, 8)
    assert torch.equal(out[0], out[1])            # same condition, same noise: same sample
    assert not torch.allclose(out[0], out[2])     # the condition changes it
    again = sample(denoiser, sched, 3, noise, num_steps=5, eta=1.0)
    assert torch.equal(out, again)
    other = sample(denoiser, sched, 3, FixedNoise.draw((1, 8, 8), 5, seed=4), 5, eta=1.0)
    assert not torch.allclose(out, other)
    with pytest.raises(ValueError, match='DDIMScheduler'):
        sample(denoiser, scheduler('DDPMScheduler'), 3, noise, num_steps=5)
    with pytest.raises(ValueError, match='step noises'):
        sample(denoiser, sched, 3, noise, num_steps=6)


def test_compvis_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    unet = build('UNet2DConditionModel', from_config=TINY_COND_UNET).eval()
    ldm = diffusers_to_ldm_unet(unet.state_dict(), unet)
    assert 'model.diffusion_model.input_blocks.0.0.weight' in ldm
    assert 'model.diffusion_model.input_blocks.1.0.in_layers.2.weight' in ldm   # resnet conv1
    assert 'model.diffusion_model.input_blocks.3.0.op.weight' in ldm            # downsampler
    assert 'model.diffusion_model.output_blocks.2.1.conv.weight' in ldm         # no attention
    assert 'model.diffusion_model.output_blocks.5.2.conv.weight' in ldm         # after attention
    ldm['model.diffusion_model.time_embed_condtion.0.weight'] = torch.zeros(2, 2)  # a method's own
    ldm['cond_stage_model.encoder.weight'] = torch.zeros(2)
    torch.save({'state_dict': ldm}, tmp_path / 'ldm.ckpt')

    loaded = checkpoint_state_dict(torch.load(tmp_path / 'ldm.ckpt'))
    converted, leftovers = ldm_to_diffusers_unet(loaded, unet)
    assert leftovers == ['model.diffusion_model.time_embed_condtion.0.weight']
    fresh = build('UNet2DConditionModel', from_config=TINY_COND_UNET).eval()
    fresh.load_state_dict(converted)
    x, t, ctx = torch.randn(2, 3, 8, 8), torch.tensor([3, 70]), torch.randn(2, 5, 16)
    with torch.no_grad():
        assert torch.equal(fresh(x, t, ctx).sample, unet(x, t, ctx).sample)


def test_checkpoint_of_the_wrong_layout():
    torch.manual_seed(0)
    unet = build('UNet2DConditionModel', from_config=TINY_COND_UNET)
    with pytest.raises(ValueError, match='not a CompVis'):
        ldm_to_diffusers_unet(unet.state_dict(), unet)          # diffusers keys
    wider = build('UNet2DConditionModel',
                  from_config=dict(TINY_COND_UNET, block_out_channels=(16, 32, 64)))
    with pytest.raises(ValueError, match='wrong shape'):
        ldm_to_diffusers_unet(diffusers_to_ldm_unet(wider.state_dict(), wider), unet)
    with pytest.raises(TypeError, match='UNet2DConditionModel'):
        ldm_to_diffusers_unet({}, build('UNet2DModel', from_config=TINY_UNET))
    with pytest.raises(ValueError, match='neither a flat state dict'):
        checkpoint_state_dict({'epoch': 3, 'meta': {}})


def test_converter_tool_writes_a_loadable_folder(tmp_path):
    import json
    import subprocess
    import sys
    torch.manual_seed(0)
    unet = build('UNet2DConditionModel', from_config=TINY_COND_UNET)
    ldm = diffusers_to_ldm_unet(unet.state_dict(), unet)
    ldm['model.diffusion_model.time_embed_condtion.0.weight'] = torch.ones(2)
    torch.save({'model_state_dict': ldm}, tmp_path / 'mindvis.pth')
    (tmp_path / 'unet.json').write_text(json.dumps(TINY_COND_UNET))
    cmd = [sys.executable, 'tools/model_converters/ldm_to_diffusers.py',
           str(tmp_path / 'mindvis.pth'), str(tmp_path / 'unet.json'), str(tmp_path / 'out')]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = build('UNet2DConditionModel', from_pretrained=str(tmp_path / 'out'),
                   subfolder='unet')
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in unet.state_dict().items())
    assert list(torch.load(tmp_path / 'out/unet_leftovers.pth')) == [
        'model.diffusion_model.time_embed_condtion.0.weight']
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode != 0 and '--force' in again.stderr    # nothing overwritten


TINY_VQ = dict(in_channels=3, out_channels=3, down_block_types=('DownEncoderBlock2D', ) * 3,
               up_block_types=('UpDecoderBlock2D', ) * 3, block_out_channels=(16, 32, 32),
               layers_per_block=1, latent_channels=3, num_vq_embeddings=16, norm_num_groups=8,
               vq_embed_dim=3)


def test_compvis_first_stage_round_trip(tmp_path):
    from mmext.diffusion import diffusers_to_ldm_vq, ldm_to_diffusers_vq
    torch.manual_seed(0)
    vq = build('VQModel', from_config=TINY_VQ).eval()
    ldm = diffusers_to_ldm_vq(vq.state_dict(), vq)
    assert ldm['first_stage_model.encoder.mid.attn_1.q.weight'].ndim == 4    # 1x1 convs there
    assert 'first_stage_model.decoder.up.2.upsample.conv.weight' in ldm      # reversed levels
    assert 'first_stage_model.quantize.embedding.weight' in ldm
    torch.save({'state_dict': ldm}, tmp_path / 'vq.ckpt')
    fresh = build('VQModel', from_config=TINY_VQ).eval()
    fresh.load_state_dict(ldm_to_diffusers_vq(checkpoint_state_dict(torch.load(tmp_path / 'vq.ckpt')),
                                              fresh))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(fresh.decode(fresh.encode(x).latents).sample,
                           vq.decode(vq.encode(x).latents).sample)
    with pytest.raises(ValueError, match='no CompVis first'):
        ldm_to_diffusers_vq({'model.diffusion_model.x': torch.zeros(1)}, fresh)
    wider = build('VQModel', from_config=dict(TINY_VQ, block_out_channels=(16, 32, 64)))
    with pytest.raises(ValueError, match='wrong shape'):
        ldm_to_diffusers_vq(diffusers_to_ldm_vq(wider.state_dict(), wider), fresh)
