import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from mmext.quant import LSQPlusQuantizer, ModuleSwap, QConv2d, QLinear, WeightBinarizer
from mmext.registry import QUANTIZERS

from ..conftest import has_nonzero_grad


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 8, 1))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean(dim=(2, 3)))


def test_swap_by_patterns_copies_weights_and_reports():
    torch.manual_seed(0)
    model = Tiny()
    float_body = model.body[0].weight.detach().clone()
    swap = QUANTIZERS.build(dict(type='ModuleSwap', w_bits=4, a_bits=4, skip=['stem', 'head'],
                                 overrides=[dict(pattern='body.2', w_bits=1, a_bits=8)]))
    assert swap(model) is model
    assert type(model.stem) is nn.Conv2d and type(model.head) is nn.Linear
    assert isinstance(model.body[0], QConv2d) and isinstance(model.body[2], QConv2d)
    torch.testing.assert_close(model.body[0].weight.detach(), float_body)
    assert isinstance(model.body[2].w_quantizer, WeightBinarizer)
    assert isinstance(model.body[2].a_quantizer, LSQPlusQuantizer)
    assert model.body[2].a_quantizer.bits == 8
    actions = {r['name']: (r['action'], r['w_bits'], r['a_bits']) for r in swap.report}
    assert all(r['attn_bits'] is None for r in swap.report)
    assert actions == {'stem': ('skipped', 32, 32), 'body.0': ('quantized', 4, 4),
                       'body.2': ('quantized', 1, 8), 'head': ('skipped', 32, 32)}
    assert '2 of 4 swappable modules quantized' in swap.format_report()
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert has_nonzero_grad(model.body[0].w_quantizer.scale)


def test_quantizer_state_saves_and_loads_with_the_model():
    torch.manual_seed(0)
    model = ModuleSwap(w_bits=4, a_bits=4)(Tiny())
    x = torch.randn(2, 3, 8, 8)
    y = model(x)
    restored = ModuleSwap(w_bits=4, a_bits=4)(Tiny())
    restored.load_state_dict(model.state_dict())
    torch.testing.assert_close(restored(x), y)


def test_float_checkpoint_loads_into_the_quantized_model():
    float_model = Tiny()
    quantized = ModuleSwap(w_bits=2, a_bits=2)(Tiny())
    missing, unexpected = quantized.load_state_dict(float_model.state_dict(), strict=False)
    assert not unexpected and all('quantizer' in k for k in missing)
    torch.testing.assert_close(quantized.head.weight, float_model.head.weight)


@pytest.mark.parametrize('cfg, message', [
    (dict(w_bits=9), "w_bits: bit width 9 is impossible"),
    (dict(a_bits=0), "a_bits: bit width 0 is impossible"),
    (dict(overrides=[dict(pattern='head', w_bits=16)]), r'overrides\[0\] w_bits: bit width 16'),
    (dict(attn_bits=3.5), "attn_bits: bit width 3.5 is impossible"),
    (dict(overrides=[dict(w_bits=4)]), 'has no pattern'),
    (dict(overrides=[dict(pattern='head', bits=4)]), "unknown keys \\['bits'\\]"),
])
def test_bad_swap_configs_are_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        ModuleSwap(**cfg)


def test_pattern_that_matches_nothing_is_refused():
    with pytest.raises(ValueError, match="pattern 'neck.\\*' matches no Linear, Conv2d"):
        ModuleSwap(skip=['neck.*'])(Tiny())


def test_swap_on_an_mmpretrain_resnet_forward_and_backward():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=512)))
    swap = ModuleSwap(w_bits=4, a_bits=4, skip=['backbone.conv1', 'head.fc'])
    swap(model)
    quantized = [r['name'] for r in swap.report if r['action'] == 'quantized']
    assert len(quantized) == 19  # 16 block convs + 3 downsample convs of ResNet-18
    assert isinstance(model.backbone.layer1[0].conv1, QConv2d)
    assert type(model.head.fc) is nn.Linear and not isinstance(model.head.fc, QLinear)
    logits = model(torch.randn(2, 3, 32, 32))
    logits.sum().backward()
    assert has_nonzero_grad(model.backbone.layer4[1].conv2.w_quantizer.scale)


def test_swap_turns_torch_attention_into_4_4_8_attention():
    model = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
    swap = ModuleSwap(w_bits=4, a_bits=4, attn_bits=8, skip=['linear2'])
    swap(model)
    from mmext.quant.attention import QMultiheadAttention
    assert isinstance(model.self_attn, QMultiheadAttention)
    assert model.self_attn.attention.prob_quantizer.bits == 8 and model.self_attn.q_proj.w_quantizer.bits == 4
    row = next(r for r in swap.report if r['name'] == 'self_attn')
    assert (row['action'], row['attn_bits']) == ('quantized', 8)
    out = model(torch.randn(2, 5, 16))
    out.sum().backward()
    assert has_nonzero_grad(model.self_attn.attention.q_quantizer.scale)


def _tiny_detr():
    """mmdet's DETR from its own config, shrunk: ResNet-18, 1+1 layers, 64 dims, 5 queries."""
    from mmengine.hub import get_config
    cfg = get_config('mmdet::detr/detr_r18_8xb2-500e_coco.py').model
    cfg.backbone.init_cfg = None
    cfg.num_queries = 5
    cfg.neck.out_channels = 64
    for part in ('encoder', 'decoder'):
        cfg[part].num_layers = 1
        for attn in ('self_attn_cfg', 'cross_attn_cfg'):
            if attn in cfg[part].layer_cfg:
                cfg[part].layer_cfg[attn].embed_dims = 64
        cfg[part].layer_cfg.ffn_cfg.embed_dims = 64
        cfg[part].layer_cfg.ffn_cfg.feedforward_channels = 128
    cfg.positional_encoding.num_feats = 32
    cfg.bbox_head.embed_dims = 64
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        return MODELS.build(cfg)


def _loss_backward(detr) -> None:
    """One mmdet training loss on two random images, backpropagated."""
    from mmdet.testing import demo_mm_inputs
    packed = demo_mm_inputs(2, [[3, 64, 64], [3, 64, 80]], num_classes=80)
    with DefaultScope.overwrite_default_scope('mmdet'):
        data = detr.data_preprocessor(packed, True)
        losses = detr.loss(data['inputs'], data['data_samples'])
    sum(v for k, v in losses.items() if 'loss' in k).backward()


def test_swap_on_an_mmdet_detr_quantizes_attention_and_trains():
    from mmext.quant.attention import QMultiheadAttention
    detr = _tiny_detr()
    swap = ModuleSwap(w_bits=4, a_bits=4, attn_bits=8, skip=['backbone.conv1', 'bbox_head.*'])
    swap(detr)
    attentions = [r['name'] for r in swap.report if r['type'] == 'MultiheadAttention']
    assert attentions == ['encoder.layers.0.self_attn.attn', 'decoder.layers.0.self_attn.attn',
                          'decoder.layers.0.cross_attn.attn']
    assert all(isinstance(detr.get_submodule(n), QMultiheadAttention) for n in attentions)
    assert not isinstance(detr.bbox_head.fc_cls, QLinear)  # skipped: full precision (mmcv Linear)
    _loss_backward(detr)
    assert has_nonzero_grad(detr.encoder.layers[0].self_attn.attn.attention.prob_quantizer.scale)


def test_swap_on_an_mmpretrain_vit_quantizes_its_attention():
    from mmext.quant.attention import QuantizedSDPA
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='VisionTransformer', arch='deit-tiny', img_size=32, patch_size=8),
            neck=None,
            head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=192)))
    swap = ModuleSwap(w_bits=4, a_bits=4, attn_bits=8,
                      skip=['backbone.patch_embed.*', 'head.*'])
    swap(model)
    attention_rows = [r for r in swap.report if r['type'] == 'mmpretrain.MultiheadAttention']
    assert len(attention_rows) == 12 and all(r['attn_bits'] == 8 for r in attention_rows)
    attn = model.backbone.layers[0].attn
    assert isinstance(attn.scaled_dot_product_attention, QuantizedSDPA)
    assert isinstance(attn.qkv, QLinear) and isinstance(attn.proj, QLinear)
    assert not isinstance(model.backbone.patch_embed.projection, QConv2d)
    logits = model(torch.randn(2, 3, 32, 32))
    logits.sum().backward()
    assert has_nonzero_grad(attn.scaled_dot_product_attention.prob_quantizer.scale)
    assert 'layers.0.attn.scaled_dot_product_attention.q_quantizer.scale' in \
        '\n'.join(model.backbone.state_dict())  # saved with the checkpoint


def test_swap_on_an_mmseg_segmentor():
    from mmengine.config import Config

    from .. import conftest
    cfg = Config.fromfile(conftest.REPO / 'configs/demo/fcn_r18-d8_1xb8-2k_fashion-scenes.py')
    with DefaultScope.overwrite_default_scope('mmseg'):
        from mmseg.registry import MODELS
        model = MODELS.build(cfg.model)
    swap = ModuleSwap(w_bits=4, a_bits=4, skip=['backbone.stem.0', 'decode_head.conv_seg',
                                                'auxiliary_head.conv_seg'])
    swap(model)
    assert isinstance(model.backbone.layer1[0].conv1, QConv2d)
    assert isinstance(model.decode_head.convs[0].conv, QConv2d)
    assert not isinstance(model.decode_head.conv_seg, QConv2d)
    logits = model(torch.randn(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 11, 8, 8)
    logits.sum().backward()
    assert has_nonzero_grad(model.decode_head.convs[0].conv.w_quantizer.scale)


def tiny_conditional_detr_cfg(
        config: str = 'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py') -> dict:
    """mmdet's Conditional DETR config (or DAB-DETR's), shrunk: ResNet-18, 1+2 layers,
    5 queries (its sine embeddings fix the width at 256; decoder layer 1 has no qpos_proj)."""
    from mmengine.hub import get_config
    cfg = get_config(config).model
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.neck.in_channels = [512]
    cfg.num_queries = 5
    for part, layers in (('encoder', 1), ('decoder', 2)):
        cfg[part].num_layers = layers
        cfg[part].layer_cfg.ffn_cfg.feedforward_channels = 128
    return cfg.to_dict()


def _tiny_conditional_detr():
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        return MODELS.build(tiny_conditional_detr_cfg())


def test_swap_on_an_mmdet_conditional_detr_quantizes_its_attention():
    from mmext.quant.detr_attention import QConditionalAttention
    detr = _tiny_conditional_detr()
    swap = ModuleSwap(w_bits=4, a_bits=4, attn_bits=8, skip=['backbone.conv1', 'bbox_head.*'])
    swap(detr)
    rows = {r['name']: r for r in swap.report}
    for name in ('decoder.layers.0.self_attn', 'decoder.layers.0.cross_attn'):
        assert (rows[name]['type'], rows[name]['attn_bits']) == ('mmdet.ConditionalAttention', 8)
        attn = detr.get_submodule(name)
        assert isinstance(attn, QConditionalAttention) and isinstance(attn.qcontent_proj, QLinear)
    assert detr.decoder.layers[1].cross_attn.qpos_proj is None  # kept absent in the twin
    assert rows['encoder.layers.0.self_attn.attn']['action'] == 'quantized'
    _loss_backward(detr)
    cross = detr.decoder.layers[0].cross_attn
    assert has_nonzero_grad(cross.attention.prob_quantizer.scale)
    assert has_nonzero_grad(cross.qpos_sine_proj.w_quantizer.scale)
    left = {name for name, _ in ModuleSwap(w_bits=4, a_bits=4)._targets(detr)}
    assert left == {r['name'] for r in swap.report if r['action'] == 'skipped'}


def test_swap_on_an_mmpretrain_swin_quantizes_its_window_attention():
    from mmext.quant import count_macs
    from mmext.quant.swin_attention import QWindowMSA
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmpretrain.registry import MODELS
        swin = MODELS.build(dict(type='SwinTransformer', arch='tiny', img_size=64,
                                 window_size=2, drop_path_rate=0.0))
    x = torch.randn(1, 3, 64, 64)
    swin.eval()
    before = count_macs(swin, x)
    swap = ModuleSwap(w_bits=1, a_bits=1, attn_bits=1, skip=['patch_embed.projection'])
    swap(swin)
    windows = [r for r in swap.report if r['type'] == 'mmpretrain.WindowMSA']
    assert len(windows) == 12 and all(r['action'] == 'quantized' for r in windows)
    attn = swin.stages[0].blocks[1].attn.w_msa  # a shifted block
    assert isinstance(attn, QWindowMSA) and isinstance(attn.qkv, QLinear)
    after = count_macs(swin, x)
    assert sum(r.macs for r in before) == sum(r.macs for r in after)
    assert all((r.w_bits, r.a_bits) == (1, 1) for r in after if r.op == 'matmul')
    swin.train()
    sum(o.sum() for o in swin(x)).backward()
    assert has_nonzero_grad(attn.attention.prob_quantizer.scale)
