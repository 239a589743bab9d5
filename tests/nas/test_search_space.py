"""The DARTS search space of mmext.nas: mixed edges, per-sample architecture gradients,
genotypes and the network a genotype builds."""
import pytest
import torch
import torch.nn.functional as F

from mmext.nas import (
    PRIMITIVES,
    ArchParameters,
    DartsNetwork,
    DartsSupernet,
    GenotypeError,
    MixedOp,
    derive_genotype,
    genotype_fragment,
    load_genotype,
    parse_genotype,
    random_genotype,
    weight_norm,
)
from mmext.quant import QConv2d

GENOTYPE = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_3x3', 0), "
            "('max_pool_3x3', 2), ('sep_conv_5x5', 1), ('avg_pool_3x3', 3), "
            "('dil_conv_5x5', 0), ('skip_connect', 4)], normal_concat=range(2, 6), "
            "reduce=[('max_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 2), "
            "('dil_conv_3x3', 1), ('avg_pool_3x3', 0), ('sep_conv_5x5', 3), "
            "('skip_connect', 2), ('dil_conv_5x5', 4)], reduce_concat=range(2, 6))")


@pytest.mark.parametrize('binary', [False, True])
def test_mixed_op_is_the_weighted_sum_of_its_operations(binary):
    torch.manual_seed(0)
    edge = MixedOp(4, stride=1, binary=binary).eval()
    x = torch.randn(2, 4, 8, 8)
    weights = torch.rand(len(PRIMITIVES)).softmax(0)
    expected = sum(w * op(x) for w, op in zip(weights, edge.ops))
    torch.testing.assert_close(edge(x, weights), expected)
    # a one-hot weight picks one operation
    pick = PRIMITIVES.index('max_pool_3x3')
    one_hot = F.one_hot(torch.tensor(pick), len(PRIMITIVES)).float()
    torch.testing.assert_close(edge(x, one_hot), edge.ops[pick](x))
    if binary:  # every convolution of a 1-bit edge is binarized
        convs = [m for m in edge.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(isinstance(m, QConv2d) for m in convs)



@pytest.mark.parametrize('binary', [False, True])
def test_weight_norms_of_an_edge_follow_the_documented_constants(binary):
    """R(w) per operation of one search edge, by hand: zero 0, pools (wrapped with their
    BatchNorm in the search space) 1 / 3^2, identity 1, convolutions the sum of their squared
    weights."""
    edge = MixedOp(4, stride=1, binary=binary)
    norms = dict(zip(PRIMITIVES, (weight_norm(op) for op in edge.ops)))
    assert norms['none'] == 0.0 and norms['skip_connect'] == 1.0
    assert norms['max_pool_3x3'] == norms['avg_pool_3x3'] == pytest.approx(1 / 9)
    for name in ('sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5'):
        op = edge.ops[PRIMITIVES.index(name)]
        by_hand = sum(float((m.weight ** 2).sum()) for m in op.modules()
                      if isinstance(m, torch.nn.Conv2d))
        assert norms[name] == pytest.approx(by_hand) and by_hand > 0


def test_edge_weight_norms_sum_the_cells_of_each_type():
    supernet = DartsSupernet(channels=4, num_cells=3, num_classes=10, in_channels=1)
    norms = supernet.edge_weight_norms()
    normal = sum(1 for c in supernet.cells if not c.reduction)
    pool = PRIMITIVES.index('avg_pool_3x3')
    torch.testing.assert_close(norms['normal'][:, pool],
                               torch.full((norms['normal'].shape[0],), normal / 9))
    assert (norms['normal'][:, PRIMITIVES.index('none')] == 0).all()

def test_per_sample_arch_gradients_sum_to_the_batch_gradient_and_match_own_gradients():
    torch.manual_seed(0)
    arch = ArchParameters()
    net = DartsSupernet(channels=4, num_cells=3, in_channels=1, binary=True,
                        stem_stride=2).eval()  # eval: BatchNorm does not couple samples
    x, y = torch.randn(3, 1, 16, 16), torch.tensor([0, 4, 9])
    weights = arch.op_weights()
    net.record_edges(True)
    F.cross_entropy(net(x, weights), y).backward()
    shares = net.per_sample_arch_grads(weights)
    torch.testing.assert_close(shares['normal'].sum(0), arch.normal.grad)
    torch.testing.assert_close(shares['reduce'].sum(0), arch.reduce.grad)
    assert arch.normal.grad.abs().max() > 0
    # sample 1's share is its own gradient divided by the batch size
    arch.zero_grad()
    net.record_edges(False)
    (F.cross_entropy(net(x[1:2], arch.op_weights()), y[1:2]) / 3).backward()
    torch.testing.assert_close(shares['reduce'][1], arch.reduce.grad)


def test_derive_genotype_keeps_the_two_strongest_edges_per_node_without_none():
    weights = torch.full((14, len(PRIMITIVES)), 0.01)
    weights[:, PRIMITIVES.index('none')] = 0.9  # never chosen
    weights[1, PRIMITIVES.index('sep_conv_3x3')] = 0.5  # node 0: inputs 0 and 1
    weights[0, PRIMITIVES.index('skip_connect')] = 0.4
    weights[4, PRIMITIVES.index('dil_conv_5x5')] = 0.6  # node 1: edges 2, 3, 4
    weights[2, PRIMITIVES.index('avg_pool_3x3')] = 0.3
    genotype = derive_genotype(weights, weights)
    assert genotype.normal[:4] == [('skip_connect', 0), ('sep_conv_3x3', 1),
                                   ('avg_pool_3x3', 0), ('dil_conv_5x5', 2)]
    assert all(op != 'none' for op, _ in genotype.normal + genotype.reduce)
    assert genotype.normal_concat == [2, 3, 4, 5]


def test_genotype_round_trip_through_string_fragment_and_network(tmp_path):
    genotype = parse_genotype(GENOTYPE)
    assert parse_genotype(str(genotype)) == genotype
    fragment = tmp_path / 'genotype.py'
    fragment.write_text(genotype_fragment(genotype, 'found by a test'))
    assert load_genotype(str(fragment)) == genotype
    (tmp_path / 'genotype.txt').write_text(str(genotype))
    assert load_genotype(str(tmp_path / 'genotype.txt')) == genotype
    net = DartsNetwork(str(fragment), channels=8, num_cells=5, in_channels=1,
                       out_indices=(0, 2, 4))
    assert net.genotype == genotype
    outs = net(torch.randn(2, 1, 28, 28))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 28, 28), (2, 64, 14, 14), (2, 128, 7, 7)]
    # each cell holds exactly the genotype's operations, 1-bit
    cell = net.cells[0]
    assert len(cell.ops) == 8 and cell.sources == [s for _, s in genotype.normal]
    assert all(isinstance(m, QConv2d) for m in cell.modules() if isinstance(m, torch.nn.Conv2d))
    imagenet = DartsNetwork(genotype, channels=8, num_cells=3, stem='imagenet')
    assert imagenet(torch.randn(1, 3, 64, 64))[0].shape == (1, 128, 2, 2)


def test_random_genotypes_are_valid_and_seeded():
    a = random_genotype(generator=torch.Generator().manual_seed(1))
    b = random_genotype(generator=torch.Generator().manual_seed(1))
    assert a == b and parse_genotype(str(a)) == a


@pytest.mark.parametrize('text, message', [
    ('Genotype(normal=[(', 'cannot parse genotype'),
    ('[1, 2]', 'must be Genotype('),
    (GENOTYPE.replace("'sep_conv_3x3', 0", "'conv_7x7', 0", 1), "unknown operation 'conv_7x7'"),
    (GENOTYPE.replace("('skip_connect', 4)]", "('skip_connect', 6)]", 1),
     'node 5 can take inputs 0..4, got 6'),
    (GENOTYPE.replace("('sep_conv_3x3', 0), ", '', 1), 'two per node'),
    (GENOTYPE.replace('normal_concat=range(2, 6), ', '', 1), "missing ['normal_concat']"),
    (GENOTYPE.replace("'sep_conv_3x3', 0", "'none', 0", 1), "unknown operation 'none'"),
    ('configs/dcpnas/no_such_genotype.py', 'does not exist'),
])
def test_bad_genotypes_give_clear_errors(text, message):
    with pytest.raises(GenotypeError, match=message.replace('(', r'\(').replace('[', r'\[')):
        load_genotype(text)
    with pytest.raises(GenotypeError):
        DartsNetwork(text, channels=8, num_cells=3)


# ------------------------------------------------------------ real-valued depthwise inputs
def _depthwise_and_pointwise(op):
    convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
    return [c for c in convs if c.groups > 1], [c for c in convs if c.groups == 1]


@pytest.mark.parametrize('name', ['sep_conv_3x3', 'dil_conv_5x5'])
def test_real_depthwise_input_keeps_the_depthwise_input_and_the_one_bit_weights(name):
    from mmext.nas import build_operation
    torch.manual_seed(0)
    op = build_operation(name, 4, 1, binary=True, real_depthwise_input=True).eval()
    depthwise, pointwise = _depthwise_and_pointwise(op)
    assert depthwise and pointwise
    x = torch.randn(2, 4, 8, 8)
    dw = depthwise[0]
    w = dw.w_quantizer(dw.weight)  # (C, 1, k, k) +-beta_c: the weights stay 1-bit
    assert torch.equal(w.abs(), dw.w_quantizer.scale.view(-1, 1, 1, 1).expand_as(w))
    real = F.conv2d(x, w, None, dw.stride, dw.padding, dw.dilation, dw.groups)
    signed = F.conv2d(torch.sign(x), w, None, dw.stride, dw.padding, dw.dilation, dw.groups)
    torch.testing.assert_close(dw(x), real)
    assert not torch.allclose(dw(x), signed)
    for pw in pointwise:  # the pointwise convolutions still take 1-bit inputs
        torch.testing.assert_close(pw(x), pw(torch.sign(x)))
    # the default binarizes the depthwise input too
    default = build_operation(name, 4, 1, binary=True).eval()
    default.load_state_dict(op.state_dict())  # same parameters, interchangeable checkpoints
    dw_default = _depthwise_and_pointwise(default)[0][0]
    torch.testing.assert_close(dw_default(x), signed)
    assert not torch.allclose(default(x), op(x))


def test_real_depthwise_input_changes_the_network_and_counts_as_flops():
    from mmext.quant import count_macs, summarize_ops
    torch.manual_seed(0)
    kwargs = dict(genotype=GENOTYPE, channels=8, num_cells=3, in_channels=1, binary=True)
    on = DartsNetwork(**kwargs, real_depthwise_input=True).eval()
    off = DartsNetwork(**kwargs).eval()
    off.load_state_dict(on.state_dict())
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(on(x)[0], off(x)[0])
        ops_on = summarize_ops(count_macs(on, x[:1]))
        ops_off = summarize_ops(count_macs(off, x[:1]))
    assert ops_on['macs'] == ops_off['macs']
    assert ops_on['flops'] > ops_off['flops'] and ops_on['bops'] < ops_off['bops']
    with pytest.raises(TypeError, match='real_depthwise_input must be True or False'):
        DartsNetwork(**kwargs, real_depthwise_input='yes')
    # step 1 of the retraining (real weights): the depthwise convolution is plain real-valued
    step1 = DartsNetwork(**dict(kwargs, binary='activations'), real_depthwise_input=True)
    depthwise, pointwise = _depthwise_and_pointwise(step1.cells[0])
    assert all(type(c) is torch.nn.Conv2d for c in depthwise)
    assert all(isinstance(c, QConv2d) for c in pointwise)
