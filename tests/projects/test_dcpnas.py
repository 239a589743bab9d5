"""DCP-NAS: tangent direction, Fisher-corrected child gradient, discrepancies, decoupled
optimisation and one search iteration."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapperDict
from mmpretrain.structures import DataSample

from mmext.engine import MultiOptimWrapperConstructor
from projects.dcpnas import DCPNAS, DecoupledOptimization, discrepancy, reconstruction_loss

SUPERNET = dict(channels=4, num_cells=3, in_channels=1, num_classes=10, stem_stride=2)


def _model(**kwargs):
    torch.manual_seed(0)
    return DCPNAS(SUPERNET, **kwargs)


def test_tangent_direction_matches_finite_differences():
    model = _model().double().eval()  # eval: deterministic BatchNorm
    with torch.no_grad():  # alpha away from uniform, so the softmax is not symmetric
        model.arch.normal.normal_(0, 0.5)
        model.arch.reduce.normal_(0, 0.5)
    x = torch.randn(4, 1, 16, 16, dtype=torch.double)
    y = torch.tensor([1, 2, 3, 4])
    _, _, grads = model.parent_arch_gradient(x, y)

    def loss():
        return F.cross_entropy(model.parent(x, model.op_weights()), y)

    eps = 1e-5
    for key, (e, m) in (('normal', (0, 4)), ('normal', (9, 6)), ('reduce', (3, 1)),
                        ('reduce', (13, 7))):
        param = getattr(model.arch, key)
        with torch.no_grad():
            param[e, m] += eps
            plus = loss()
            param[e, m] -= 2 * eps
            minus = loss()
            param[e, m] += eps
        numeric = (plus - minus) / (2 * eps)
        assert grads[key][e, m].abs() > 1e-8
        torch.testing.assert_close(grads[key][e, m], numeric, rtol=1e-4, atol=1e-9)


def test_child_arch_gradient_adds_the_fisher_product_of_the_discrepancy():
    model = _model(tangent_weight=0.5).eval()
    x = torch.randn(3, 1, 16, 16)
    target = torch.rand(3, 10).softmax(-1)
    tangent = torch.randn(2 * 14 * 8) * 1e-3
    g, grad, d_value, u = model.child_arch_gradient(x, target, tangent)
    # explicit per-sample gradients of the KL, one sample at a time
    rows = []
    for b in range(3):
        alphas = model.alphas()
        logits = model.child(x[b:b + 1], {k: a.softmax(-1) for k, a in alphas.items()})
        kl = F.kl_div(logits.log_softmax(-1), target[b:b + 1], reduction='batchmean')
        rows.append(torch.cat([t.flatten() for t in torch.autograd.grad(
            kl, [alphas['normal'], alphas['reduce']])]))
    per_sample = torch.stack(rows)
    torch.testing.assert_close(u, per_sample.mean(0))
    d_grad = 2 * (u - tangent)
    expected = u + 0.5 * per_sample.T @ (per_sample @ d_grad) / 3
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-10)
    torch.testing.assert_close(d_value, (u - tangent).pow(2).sum())
    assert not torch.allclose(grad, u)  # the correction is not negligible here


@pytest.mark.parametrize('metric', ['fro', 'l1', 'cosine'])
def test_discrepancy_derivatives_match_autograd(metric):
    torch.manual_seed(1)
    u = torch.randn(20, dtype=torch.double, requires_grad=True)
    g = torch.randn(20, dtype=torch.double)
    value, derivative = discrepancy(u, g, metric)
    torch.testing.assert_close(derivative, torch.autograd.grad(value, u)[0])
    assert discrepancy(g.clone(), g, metric)[0].abs() < 1e-12  # zero at the tangent
    with pytest.raises(ValueError, match='unknown discrepancy'):
        discrepancy(u, g, 'kl')


def test_decoupled_step_backtracks_the_heavier_half_of_each_edge():
    decoupled = DecoupledOptimization((2, 4), keys=('normal', ), eta2=10.0, psi_init=0.5,
                                      psi_lr=0.1)
    alpha = torch.nn.Parameter(torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]]))
    wrapper = MultiOptimWrapperConstructor(dict(arch=dict(optimizer=dict(type='SGD', lr=0.1))))
    holder = torch.nn.Module()
    holder.arch = torch.nn.Module()
    holder.arch.param = alpha
    optim = wrapper(holder)['arch']
    norms = {'normal': torch.tensor([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]])}
    grads = {'normal': torch.ones(2, 4)}
    # first step: plain SGD (nothing to backtrack yet), then the mask and alpha^t are kept
    decoupled.step({'normal': alpha}, grads, optim, norms)
    torch.testing.assert_close(alpha.data, torch.tensor([[0.9, 1.9, 2.9, 3.9],
                                                         [3.9, 2.9, 1.9, 0.9]]))
    torch.testing.assert_close(decoupled.mask_normal, torch.tensor([[0., 0., 1., 1.],
                                                                    [1., 1., 0., 0.]]))
    effective = decoupled.effective({'normal': alpha})['normal']
    eta = 0.1 * 10.0
    expected = alpha.data + eta * 0.5 * decoupled.mask_normal * torch.tensor(
        [[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    torch.testing.assert_close(effective, expected)
    # second step: the backtracking is folded into alpha, psi moves and stays non-negative
    decoupled.step({'normal': alpha}, {'normal': torch.full((2, 4), 100.0)}, optim, norms)
    assert (decoupled.psi_normal >= 0).all()
    assert not torch.allclose(decoupled.psi_normal, torch.full((2, 4), 0.5))
    torch.testing.assert_close(decoupled.psi_normal[0, :2], torch.full((2, ), 0.5))  # masked


def _batch(n, seed):
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (1, 16, 16), generator=g, dtype=torch.uint8)
              for _ in range(n)]
    samples = [DataSample().set_gt_label(int(torch.randint(10, (1, ), generator=g)))
               for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('use_parent', [True, False])
def test_one_search_iteration_updates_every_part(use_parent):
    model = _model(use_parent=use_parent, decoupled=dict(),
                   data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor',
                                          num_classes=10, mean=[73.0], std=[90.0]))
    entries = dict(child=dict(optimizer=dict(type='Adam', lr=1e-2)),
                   arch=dict(optimizer=dict(type='Adam', lr=1e-2)),
                   parent=dict(optimizer=dict(type='SGD', lr=0.1)))
    optim = MultiOptimWrapperConstructor(entries)(model)  # no parent: its entry is skipped
    assert isinstance(optim, OptimWrapperDict)
    assert set(optim.keys()) == ({'child', 'arch', 'parent'} if use_parent else {'child', 'arch'})
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    genotype = model.genotype()
    model.train()
    log = model.train_step(dict(train=_batch(4, 0), arch=_batch(4, 1)), optim)
    after = model.state_dict()
    assert not torch.equal(before['arch.normal'], after['arch.normal'])
    assert not torch.equal(before['child.stem.0.weight'], after['child.stem.0.weight'])
    if use_parent:
        assert not torch.equal(before['parent.stem.0.weight'], after['parent.stem.0.weight'])
        assert {'loss_parent', 'loss_nas', 'loss_child_kl', 'discrepancy'} <= set(log)
    else:
        assert model.parent is None and 'loss_child' in log
    assert all(torch.isfinite(v) for v in log.values())
    assert str(model.genotype()).startswith('Genotype(') and genotype is not None
    with pytest.raises(TypeError, match='NASSearchLoop'):
        model.train_step(_batch(4, 0), optim)


def test_reconstruction_loss_and_optimizer_constructor_errors():
    model = _model()
    model.child(torch.randn(2, 1, 16, 16), model.op_weights())  # initialises the scales
    assert reconstruction_loss(model.child) > 0
    with pytest.raises(ValueError, match='no 1-bit convolution'):
        reconstruction_loss(model.parent)
    with pytest.raises(ValueError, match="no sub-module or parameter of that name"):
        MultiOptimWrapperConstructor(dict(teacher=dict(optimizer=dict(type='SGD', lr=1))))(model)
    with pytest.raises(ValueError, match='must be a dict with an "optimizer"'):
        MultiOptimWrapperConstructor(dict(child=dict(lr=1)))
    with pytest.raises(ValueError, match='unknown tangent'):
        _model(tangent='hessian')


# ------------------------------------------------------------------------------ retraining
RELEASED = ("Genotype(normal=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('dil_conv_3x3', 2), "
            "('skip_connect', 0), ('sep_conv_3x3', 3), ('avg_pool_3x3', 1), "
            "('dil_conv_3x3', 4), ('avg_pool_3x3', 3)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('max_pool_3x3', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 1), "
            "('sep_conv_3x3', 0), ('max_pool_3x3', 1), ('dil_conv_5x5', 2), "
            "('dil_conv_5x5', 2), ('sep_conv_5x5', 1)], reduce_concat=[2, 3, 4, 5])")


@pytest.mark.parametrize('step', [1, 2])
def test_released_genotype_configs_build_the_released_network(step):
    from mmengine.config import Config

    from mmext.nas import load_genotype, parse_genotype
    from mmext.quant import QConv2d, SignBinarizer
    from mmext.registry import MODELS
    from projects.dcpnas import DistilledClassifierWithReconstruction

    from ..conftest import REPO
    cfg = Config.fromfile(REPO / f'configs/dcpnas/dcpnas-released-retrain-step{step}_8xb64-256e_in1k.py')
    backbone = cfg.model.classifier.backbone
    assert (backbone.channels, backbone.num_cells, backbone.stem) == (108, 10, 'imagenet')
    assert load_genotype(backbone.genotype) == parse_genotype(RELEASED)
    assert backbone.real_depthwise_input is True
    assert cfg.model.reconstruction_weight == (0.0 if step == 1 else 5e-5)
    assert cfg.model.teacher.config == 'mmpretrain::resnet/resnet34_8xb32_in1k.py'
    model = MODELS.build(cfg.model)  # the teacher is built on first use: not here
    assert isinstance(model, DistilledClassifierWithReconstruction)
    # 14.30 M parameters with real weights; step 2 adds one learnable scale per output channel
    # of every 1-bit convolution (README, "The released ImageNet model")
    params = sum(p.numel() for p in model.parameters())
    assert params == (14_301_550 if step == 1 else 14_343_238)
    # real_depthwise_input: only the pointwise (and 1 x 1) convolutions of the cells sign
    # their inputs
    convs = [m for m in model.student.backbone.cells.modules() if isinstance(m, torch.nn.Conv2d)]
    signs = {m: isinstance(getattr(m, 'a_quantizer', None), SignBinarizer) for m in convs}
    assert all(not signs[m] for m in convs if m.groups > 1)
    assert all(signs[m] for m in convs if m.groups == 1)
    assert any(m.groups > 1 for m in convs)
    assert all(isinstance(m, QConv2d) for m in convs if m.groups > 1) == (step == 2)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()


def _retrain_model(reconstruction_weight, binary=True):
    from projects.dcpnas import DistilledClassifierWithReconstruction
    from tests.nas.test_search_space import GENOTYPE
    torch.manual_seed(0)
    classifier = dict(
        type='ImageClassifier',
        backbone=dict(type='mmext.DartsNetwork', genotype=GENOTYPE, channels=4, num_cells=3,
                      in_channels=1, binary=binary, stem_stride=2),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
                  loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[73.0],
                               std=[90.0]))
    return DistilledClassifierWithReconstruction(
        classifier, teacher=None, label_loss_weight=1.0,
        reconstruction_weight=reconstruction_weight)


def test_reconstruction_weight_adds_mu_times_l_r_to_the_retraining_loss():
    model = _retrain_model(0.0)
    x = torch.randn(4, 1, 16, 16)
    samples = [DataSample().set_gt_label(i) for i in range(4)]
    losses = model.loss(x, samples)  # off: the distilled classifier's loss, nothing added
    assert set(losses) == {'loss'}
    conv = next(m for m in model.student.backbone.modules()
                if isinstance(m, torch.nn.Conv2d) and hasattr(m, 'w_quantizer')
                and hasattr(m.w_quantizer, 'scale'))

    def loss_and_grad(mu):
        model.reconstruction_weight = mu
        model.zero_grad()
        total, log = model.parse_losses(model.loss(x, samples))
        total.backward()
        return total.detach(), log, conv.weight.grad.clone()

    base, _, grad_off = loss_and_grad(0.0)
    mu = 0.5
    total, log, grad_on = loss_and_grad(mu)
    l_r = reconstruction_loss(model.student)
    assert l_r > 0
    torch.testing.assert_close(log['loss_rec'], mu * l_r.detach())
    torch.testing.assert_close(total, base + mu * l_r.detach())
    # the weights feel the pull towards beta * sign(w): d(mu L_R)/dw = 2 mu (w - beta sign(w))
    w = conv.weight.detach()
    beta = conv.w_quantizer.scale.detach().view(-1, 1, 1, 1)
    torch.testing.assert_close(grad_on - grad_off, 2 * mu * (w - beta * torch.sign(w)))


def test_reconstruction_weight_needs_one_bit_weights():
    with pytest.raises(ValueError, match='needs 1-bit weights'):
        _retrain_model(1e-4, binary='activations')  # step 1: real weights
    with pytest.raises(ValueError, match='must be >= 0'):
        _retrain_model(-1.0)
    assert _retrain_model(0.0, binary='activations').reconstruction_weight == 0.0
