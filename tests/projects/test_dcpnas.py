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
