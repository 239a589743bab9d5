"""DCP-NAS's decoupled optimisation of the architecture parameters (README.md).

After the ordinary update ``alpha^{t+1} = alpha^t - eta1 * grad``, the operations whose weights
are large on their edge are backtracked::

    alpha~^{t+1}[e, m] = alpha^{t+1}[e, m] + eta * psi[e, m] * alpha^t[e, m]   if rank(R(w_em)) > tau
                       = alpha^{t+1}[e, m]                                       otherwise

with ``R(w) = ||w||^2`` of the operation's weights (constants for parameter-free ones, see
:func:`mmext.nas.weight_norm`), ``eta = eta1 * eta2`` and a learnable non-negative ``psi``
updated as ``psi <- |psi - eta_psi * dL/dpsi|``. Our concretisation (the paper leaves it open):
``psi`` is (E, M) per cell type, starts at 0.01, and gets its gradient because the next
forward uses ``alpha~`` (:meth:`effective`); ``tau`` backtracks the upper half of each edge.
"""
from __future__ import annotations

import torch
from torch import nn


class DecoupledOptimization(nn.Module):
    """State and update of the decoupled optimisation for one set of architecture parameters.

    Args:
        shape: (E, M) of each alpha matrix.
        keys: the cell types ('normal', 'reduce').
        eta2: ``eta = eta1 * eta2`` with eta1 the architecture learning rate.
        psi_init: initial ``psi``.
        psi_lr: ``eta_psi``.
    """

    def __init__(self, shape: tuple[int, int], keys: tuple[str, ...] = ('normal', 'reduce'),
                 eta2: float = 1.0, psi_init: float = 0.01, psi_lr: float = 1e-3):
        super().__init__()
        self.keys = tuple(keys)
        self.eta2 = eta2
        self.psi_lr = psi_lr
        for key in self.keys:
            self.register_buffer(f'psi_{key}', torch.full(shape, float(psi_init)))
            self.register_buffer(f'prev_{key}', torch.zeros(shape))  # alpha^t
            self.register_buffer(f'mask_{key}', torch.zeros(shape))  # rank(R) > tau
        self.register_buffer('eta', torch.zeros(()))  # eta1 * eta2 of the last step

    def correction(self, key: str) -> torch.Tensor:
        """``eta * psi * mask * alpha^t`` for one cell type, (E, M)."""
        return (self.eta * getattr(self, f'psi_{key}') * getattr(self, f'mask_{key}')
                * getattr(self, f'prev_{key}'))

    def effective(self, alphas: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``alpha~``: the parameters plus the backtracking of the last step (differentiable in
        the parameters)."""
        return {k: a + self.correction(k) for k, a in alphas.items()}

    @staticmethod
    def upper_half(norms: torch.Tensor) -> torch.Tensor:
        """1 where an operation's weight norm ranks in the upper half of its edge, else 0."""
        rank = norms.argsort(dim=-1).argsort(dim=-1)
        return (rank >= norms.shape[-1] // 2).float()

    @torch.no_grad()
    def step(self, params: dict[str, nn.Parameter], grads: dict[str, torch.Tensor],
             optim_wrapper, weight_norms: dict[str, torch.Tensor]) -> None:
        """One architecture update with backtracking.

        Args:
            params: the alpha parameters by cell type (their ``.data`` is updated).
            grads: d loss / d alpha~ by cell type, from a forward that used :meth:`effective`.
            optim_wrapper: the architecture optimizer (its lr is eta1).
            weight_norms: ``R(w_m)`` by cell type, (E, M), of the network being updated.
        """
        for key, param in params.items():
            param.data.add_(self.correction(key))  # alpha~^t (the forward's) becomes the parameter
            # psi's gradient: d alpha~ / d psi = eta * mask * alpha^t
            psi = getattr(self, f'psi_{key}')
            d_psi = self.eta * getattr(self, f'mask_{key}') * getattr(self, f'prev_{key}')
            psi.copy_((psi - self.psi_lr * d_psi * grads[key]).abs())
            getattr(self, f'prev_{key}').copy_(param.data)
            param.grad = grads[key].detach().clone()
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        eta1 = optim_wrapper.get_lr()['lr'][0]
        self.eta.fill_(eta1 * self.eta2)
        for key in params:
            getattr(self, f'mask_{key}').copy_(self.upper_half(weight_norms[key]).to(
                getattr(self, f'mask_{key}').device))
