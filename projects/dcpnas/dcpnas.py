"""DCP-NAS: a 1-bit child supernet searched under a real-valued parent (README.md).

One set of architecture parameters alpha is shared by a real-valued parent supernet and a 1-bit
child supernet. Every search iteration (``train_step``, driven by ``mmext.NASSearchLoop``) runs
Algorithm 10 at the granularity of one batch pair:

1. parent weights: ``CE(p(w, alpha), y)`` on the weight batch;
2. parent architecture: ``L_NAS = CE`` on the architecture batch; its gradient is the tangent
   direction ``g_P``; alpha takes a (decoupled) step on it;
3. child weights: ``G = KL(sg(p_P) || p_C)`` (the child learns the parent's output
   distribution) ``+ mu * L_R`` (reconstruction of the binarized weights);
4. child architecture: ``grad = dG/dalpha + lambda * H_G dD/du`` with ``u = dG/dalpha``,
   ``D(u)`` the discrepancy to ``g_P`` (squared Frobenius norm by default) and ``H_G``, the
   Hessian of G, replaced by the empirical Fisher ``mean_b g_b g_b^T`` of per-sample
   gradients. alpha takes a (decoupled) step on it.

Per-sample gradients come from one forward and backward: each mixed edge's output is linear in
its operation weights (:meth:`mmext.nas.DartsSupernet.per_sample_arch_grads`), so no
second-order autograd and no micro-batches are needed.

``use_parent=False`` gives the ablation "search the 1-bit child alone": plain first-order DARTS
on the child (CE for weights and architecture).

Under DDP (:class:`DCPNASDistributedDataParallel`) ``train_step`` gets an ``average`` function
and averages, over the processes, every batch mean whose global value a later step needs: the
weight gradients before each weight step, ``g_P``, ``u`` before ``D(u)`` is taken, and the
Fisher product (see ``distributed.py``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmext.nas import ArchParameters, derive_genotype
from mmext.quant import QConv2d, WeightBinarizer
from mmext.registry import MODELS

from .decoupled import DecoupledOptimization

#: ``average(tensors)`` replaces each tensor, in place, by its mean over the processes.
Average = Callable[[Sequence[torch.Tensor]], None]

DISCREPANCIES = ('fro', 'l1', 'cosine')
TANGENTS = ('loss_gradient', 'likelihood_gradient')


def discrepancy(u: torch.Tensor, g: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``D(u)`` between the child's architecture gradient ``u`` and the tangent ``g`` (flat
    vectors) and its derivative ``dD/du``.

    - 'fro': ``||u - g||^2``, derivative ``2 (u - g)``;
    - 'l1': ``||u - g||_1``, derivative ``sign(u - g)``;
    - 'cosine': ``1 - cos(u, g)``, derivative ``-(g / (|u||g|) - cos * u / |u|^2)``.
    """
    if metric == 'fro':
        d = u - g
        return d.pow(2).sum(), 2 * d
    if metric == 'l1':
        d = u - g
        return d.abs().sum(), torch.sign(d)
    if metric == 'cosine':
        nu, ng = u.norm().clamp_min(1e-12), g.norm().clamp_min(1e-12)
        cos = (u @ g) / (nu * ng)
        return 1 - cos, -(g / (nu * ng) - cos * u / nu ** 2)
    raise ValueError(f'unknown discrepancy {metric!r}; choose one of {DISCREPANCIES}')


def reconstruction_loss(model: torch.nn.Module) -> torch.Tensor:
    """``L_R = sum ||w - beta * sign(w)||^2`` over the 1-bit convolutions with a learnable
    per-channel scale beta."""
    total = None
    for m in model.modules():
        if isinstance(m, QConv2d) and isinstance(m.w_quantizer, WeightBinarizer) \
                and m.w_quantizer.learnable_scale:
            w = m.weight
            beta = m.w_quantizer.scale.view(-1, *[1] * (w.dim() - 1))
            sign = torch.where(w >= 0, 1.0, -1.0).detach()
            term = (w - beta * sign).pow(2).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError('reconstruction_loss: the model has no 1-bit convolution with a '
                         'learnable scale')
    return total


def _labels(samples) -> torch.Tensor:
    return torch.cat([s.gt_label for s in samples])


def _flat(d: dict[str, torch.Tensor], keys) -> torch.Tensor:
    return torch.cat([d[k].flatten(-2) for k in keys], dim=-1)


def _unflat(v: torch.Tensor, like: dict[str, torch.Tensor], keys) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for k in keys:
        n = like[k].numel()
        out[k] = v[start:start + n].view_as(like[k])
        start += n
    return out


@MODELS.register_module()
class DCPNAS(BaseModel):
    """The DCP-NAS search model: parent and child supernets, shared alpha, decoupled steps.

    Args:
        supernet: config of :class:`mmext.nas.DartsSupernet` (``binary`` is set per network).
        data_preprocessor: e.g. ``dict(type='ClsDataPreprocessor', ...)``.
        use_parent: False searches the child alone (the ablation without the parent).
        tangent_weight: lambda, the weight of the discrepancy term D.
        reconstruction_weight: mu, the weight of L_R.
        discrepancy: 'fro' (default, the paper's best), 'l1' or 'cosine'.
        tangent: 'loss_gradient' (``g_P = dL_NAS/dalpha``: the child's architecture gradient is
            pulled towards the parent's, our reading) or 'likelihood_gradient'
            (``g_P = -dL_NAS/dalpha``, the literal reading of the book's ``sum_n dp_n/dalpha``).
        decoupled: kwargs of :class:`DecoupledOptimization`, or None to switch it off.
        arch_init_std: alpha starts as ``arch_init_std * randn``.
    """

    def __init__(self, supernet: dict, data_preprocessor: dict | None = None,
                 use_parent: bool = True, tangent_weight: float = 0.01,
                 reconstruction_weight: float = 1e-4, discrepancy: str = 'fro',
                 tangent: str = 'loss_gradient', decoupled: dict | None = None,
                 arch_init_std: float = 1e-3, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if discrepancy not in DISCREPANCIES:
            raise ValueError(f'unknown discrepancy {discrepancy!r}; choose one of '
                             f'{DISCREPANCIES}')
        if tangent not in TANGENTS:
            raise ValueError(f'unknown tangent {tangent!r}; choose one of {TANGENTS}')
        supernet = dict(supernet)
        supernet.setdefault('type', 'mmext.DartsSupernet')
        self.child = MODELS.build(dict(supernet, binary=True))
        self.parent = MODELS.build(dict(supernet, binary=False)) if use_parent else None
        self.arch = ArchParameters(self.child.steps, self.child.primitives, arch_init_std)
        shape = tuple(self.arch.normal.shape)
        self.decoupled = None if decoupled is None else DecoupledOptimization(shape, **decoupled)
        self.use_parent = use_parent
        self.tangent_weight = tangent_weight
        self.reconstruction_weight = reconstruction_weight
        self.discrepancy = discrepancy
        self.tangent = tangent

    # architecture --------------------------------------------------------------------------
    def alphas(self) -> dict[str, torch.Tensor]:
        """The alphas the networks use: the parameters, plus the backtracking if decoupled."""
        alphas = self.arch.alphas()
        return alphas if self.decoupled is None else self.decoupled.effective(alphas)

    def op_weights(self) -> dict[str, torch.Tensor]:
        return {k: a.softmax(-1) for k, a in self.alphas().items()}

    def genotype(self):
        """The child's genotype (DARTS discretisation of the shared alphas)."""
        w = self.op_weights()
        return derive_genotype(w['normal'], w['reduce'], self.arch.steps, self.arch.primitives)

    @staticmethod
    def _update_weights(optim_wrapper, loss: torch.Tensor, module: torch.nn.Module,
                        average: Average | None) -> None:
        """``optim_wrapper.update_params(loss)`` with the gradients of ``module``'s parameters
        averaged over the processes between the backward and the step (a parameter without a
        gradient gets a zero one first, so that every process averages the same list)."""
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        if not optim_wrapper.should_update():
            return
        if average is not None:
            params = [p for p in module.parameters() if p.requires_grad]
            for param in params:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
            average([param.grad for param in params])
        optim_wrapper.step()
        optim_wrapper.zero_grad()

    def _arch_step(self, optim_wrapper, grads: dict[str, torch.Tensor], network) -> None:
        params = self.arch.alphas()
        if self.decoupled is not None:
            self.decoupled.step(params, grads, optim_wrapper, network.edge_weight_norms())
            return
        for key, param in params.items():
            param.grad = grads[key].detach().clone()
        optim_wrapper.step()
        optim_wrapper.zero_grad()

    def parent_arch_gradient(self, inputs: torch.Tensor, labels: torch.Tensor,
                             average: Average | None = None):
        """``L_NAS = CE(parent(x, alpha), y)`` and its gradient ``dL_NAS / dalpha`` by cell type
        (the tangent direction before its sign), averaged over the processes if ``average``
        is given. Returns (loss, logits, grads): loss and logits (B, classes) of this
        process's batch, grads ``dict(normal=(E, M), reduce=(E, M))``."""
        alphas = self.alphas()
        keys = tuple(alphas)
        logits = self.parent(inputs, {k: a.softmax(-1) for k, a in alphas.items()})
        loss = F.cross_entropy(logits, labels)
        grads = torch.autograd.grad(loss, [alphas[k] for k in keys])
        if average is not None:
            average(grads)
        return loss, logits, dict(zip(keys, grads))

    def child_arch_gradient(self, inputs: torch.Tensor, target: torch.Tensor,
                            tangent: torch.Tensor, average: Average | None = None):
        """The child's architecture gradient ``u + lambda * F dD/du`` (flat over the cell types).

        Args:
            inputs: (B, C, H, W) architecture batch.
            target: (B, classes) the parent's softmax output on it.
            tangent: (P,) the tangent direction, flat like :meth:`ArchParameters.alphas`.
            average: under DDP, the mean over the processes. ``u`` is averaged before ``D(u)``
                and ``dD/du`` are taken, and the Fisher product after, so ``F`` is the mean over
                the samples of all processes (equal batches per process).

        Returns:
            (G, grad (P,), D(u), u (P,)): the child's KL to the parent (this process's batch),
            the corrected gradient, the discrepancy and ``u = dG / dalpha``. ``F = mean_b g_b
            g_b^T`` over the per-sample gradients g_b of G (the empirical Fisher standing in for
            G's Hessian).
        """
        alphas = self.alphas()
        keys = tuple(alphas)
        weights = {k: a.softmax(-1) for k, a in alphas.items()}
        self.child.record_edges(True)
        try:
            logits = self.child(inputs, weights)
            g = F.kl_div(logits.log_softmax(-1), target, reduction='batchmean')
            u = torch.autograd.grad(g, [alphas[k] for k in keys])
            shares = self.child.per_sample_arch_grads(weights)
        finally:
            self.child.record_edges(False)
        u = torch.cat([t.flatten() for t in u])
        if average is not None:
            average([u])
        d_value, d_grad = discrepancy(u, tangent, self.discrepancy)
        per_sample = inputs.shape[0] * _flat(shares, keys).flatten(1)  # (B, P) own gradients
        fisher_v = per_sample.T @ (per_sample @ d_grad) / per_sample.shape[0]
        if average is not None:
            average([fisher_v])
        return g, u + self.tangent_weight * fisher_v, d_value, u

    # training ------------------------------------------------------------------------------
    def train_step(self, data: dict, optim_wrapper,
                   average: Average | None = None) -> dict[str, torch.Tensor]:
        """One search iteration on ``dict(train=batch, arch=batch)`` (``NASSearchLoop``) with an
        ``OptimWrapperDict`` holding 'child', 'arch' and (with the parent) 'parent'.

        ``average`` (given by :class:`DCPNASDistributedDataParallel`): in-place mean over the
        processes, applied to every gradient before it is used; None in a single process.
        The logged losses are this process's."""
        if not isinstance(data, dict) or set(data) != {'train', 'arch'}:
            raise TypeError('DCPNAS.train_step takes dict(train=..., arch=...): use '
                            "train_cfg=dict(type='mmext.NASSearchLoop', arch_dataloader=...)")
        train = self.data_preprocessor(data['train'], True)
        arch = self.data_preprocessor(data['arch'], True)
        x_w, y_w = train['inputs'], _labels(train['data_samples'])
        x_a, y_a = arch['inputs'], _labels(arch['data_samples'])
        keys = tuple(self.arch.alphas())
        log = {}
        if self.use_parent:
            # 1. parent weights
            with optim_wrapper['parent'].optim_context(self.parent):
                weights = {k: w.detach() for k, w in self.op_weights().items()}
                logits_pw = self.parent(x_w, weights)
                loss = F.cross_entropy(logits_pw, y_w)
            self._update_weights(optim_wrapper['parent'], loss, self.parent, average)
            log['loss_parent'] = loss.detach()
            # 2. parent architecture and the tangent direction
            loss_nas, logits_pa, g_parent = self.parent_arch_gradient(x_a, y_a, average)
            self._arch_step(optim_wrapper['arch'], g_parent, self.parent)
            log['loss_nas'] = loss_nas.detach()
            sign = 1.0 if self.tangent == 'loss_gradient' else -1.0
            tangent = sign * _flat(g_parent, keys)
            target_w = logits_pw.detach().softmax(-1)
            target_a = logits_pa.detach().softmax(-1)

        # 3. child weights
        with optim_wrapper['child'].optim_context(self.child):
            weights = {k: w.detach() for k, w in self.op_weights().items()}
            logits_cw = self.child(x_w, weights)
            if self.use_parent:
                loss = F.kl_div(logits_cw.log_softmax(-1), target_w, reduction='batchmean')
                log['loss_child_kl'] = loss.detach()
            else:
                loss = F.cross_entropy(logits_cw, y_w)
                log['loss_child'] = loss.detach()
            if self.reconstruction_weight:
                rec = self.reconstruction_weight * reconstruction_loss(self.child)
                log['loss_rec'] = rec.detach()
                loss = loss + rec
        self._update_weights(optim_wrapper['child'], loss, self.child, average)

        # 4. child architecture
        if not self.use_parent:  # first-order DARTS on the child alone
            alphas = self.alphas()
            loss_a = F.cross_entropy(self.child(x_a, {k: a.softmax(-1) for k, a in
                                                      alphas.items()}), y_a)
            grads = dict(zip(keys, torch.autograd.grad(loss_a, [alphas[k] for k in keys])))
            if average is not None:
                average(list(grads.values()))
            self._arch_step(optim_wrapper['arch'], grads, self.child)
            log['loss_child_arch'] = loss_a.detach()
            return log
        g, grad, d_value, u = self.child_arch_gradient(x_a, target_a, tangent, average)
        self._arch_step(optim_wrapper['arch'], _unflat(grad, self.arch.alphas(), keys),
                        self.child)
        log.update(loss_child_arch=g.detach(), discrepancy=d_value.detach(),
                   tangent_cos=F.cosine_similarity(u, tangent, dim=0).detach())
        return log

    # evaluation ----------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        """The child supernet under the current alphas: 'tensor' -> logits (B, classes),
        'predict' -> data samples with scores, 'loss' -> dict(loss=CE)."""
        weights = {k: w.detach() for k, w in self.op_weights().items()}
        logits = self.child(inputs, weights)
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, _labels(data_samples)))
        if mode == 'predict':
            from mmpretrain.structures import DataSample
            scores = logits.softmax(-1)
            data_samples = data_samples or [DataSample() for _ in range(len(scores))]
            for sample, score in zip(data_samples, scores):
                sample.set_pred_score(score).set_pred_label(score.argmax(keepdim=True))
            return data_samples
        raise ValueError(f"mode must be 'tensor', 'predict' or 'loss', got {mode!r}")
