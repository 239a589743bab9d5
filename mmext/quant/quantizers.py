"""Fake quantizers and binarizers (registry ``QUANTIZERS``).

Each module maps a float tensor to a float tensor that takes only the values of a b-bit grid
(or of {-a, +a} for 1 bit), with straight-through gradients, so that quantization-aware training
runs in ordinary float arithmetic. The definitions:

- :class:`LSQQuantizer` (weights, symmetric): ``w_q = s * round_ste(clamp(w / s, Qn, Qp))``,
  learnable step ``s`` per tensor or per channel, gradient scale ``1 / sqrt(numel * Qp)``,
  ``s0 = 2 mean|w| / sqrt(Qp)`` on the first forward (Esser et al., LSQ).
- :class:`LSQPlusQuantizer` (activations, asymmetric): ``x_q = s * (round_ste(clamp(x / s + z,
  Qn, Qp)) - z)`` with a learnable zero point ``z`` (Bhalgat et al., LSQ+).
- :class:`SignBinarizer`, :class:`RSign`, :class:`WeightBinarizer`,
  :class:`LearnableScaleBinarizer`: 1-bit binarizers with selectable gradient estimators.

``bits=32`` makes a quantizer the identity.

LSQ and LSQ+ set their initial step either from the data-free formulas above (``calibration``
None, the papers' initialisation) or by calibration (``calibration=dict(method='mse', ...)``,
:mod:`mmext.quant.calibration`), which must run before the first forward.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from mmext.registry import QUANTIZERS

from .observers import CalibrationSpec, weight_range

FULL_PRECISION = 32
MULTI_BIT = tuple(range(2, 9))


def check_bits(bits: int, allowed: tuple[int, ...], what: str) -> int:
    """Return ``bits`` if ``what`` supports it, else raise a ValueError that says what does."""
    if bits not in allowed:
        raise ValueError(
            f'{what} does not support bits={bits!r}; it takes {sorted(allowed)}. Use 2..8 bits '
            'with mmext.LSQQuantizer / mmext.LSQPlusQuantizer, 1 bit with mmext.SignBinarizer, '
            'mmext.WeightBinarizer or mmext.LearnableScaleBinarizer, and 32 for full precision.')
    return bits


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round`` in the forward pass, identity in the backward pass."""
    return x + (x.round() - x).detach()


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``scale`` in the backward pass."""
    return (x - x * scale).detach() + x * scale


class _FakeQuantize(torch.autograd.Function):
    """``s * (clamp(round(x / s + z), Qn, Qp) - z)`` with the LSQ / LSQ+ gradients written out,
    which takes about half the tensor operations of the same formula through autograd.

    Gradients (``t = x / s + z``, inside = ``Qn <= t <= Qp``): dx = 1 inside, 0 outside;
    ds = ``round(t) - t`` inside, ``bound - z`` outside; dz = 0 inside, ``-s`` outside; those of
    s and z are multiplied by ``grad_factor``. ``s`` and ``z`` arrive broadcast against ``x``.
    """

    @staticmethod
    def forward(ctx, x, s, z, qn, qp, grad_factor):
        t = x / s
        if z is not None:
            t = t.add_(z)
        out = t.clamp(qn, qp).round_()
        if z is not None:
            out = out.sub_(z)
        ctx.save_for_backward(t, s, z)
        ctx.bounds, ctx.grad_factor = (qn, qp), grad_factor
        return out.mul_(s)

    @staticmethod
    def backward(ctx, grad):
        t, s, z = ctx.saved_tensors
        clamped = t.clamp(*ctx.bounds)
        inside = clamped == t
        grad_x = grad * inside
        level = clamped.round_()
        ds = torch.where(inside, level - t, level if z is None else level - z)
        grad_s = _sum_to(grad * ds, s.shape) * ctx.grad_factor
        grad_z = None
        if z is not None:
            grad_z = _sum_to(grad_x - grad, z.shape) * (s * ctx.grad_factor)
        return grad_x, grad_s, grad_z, None, None, None


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``t`` over the dimensions where ``shape`` (same rank, or a scalar) has size 1."""
    if len(shape) == 0 or len(shape) != t.dim():
        return t.sum().reshape(shape)
    dims = [d for d, n in enumerate(shape) if n == 1 and t.shape[d] != 1]
    return t.sum(dims, keepdim=True) if dims else t


def _fake_quantize_composite(x, s, z, qn: int, qp: int):
    """The same as :class:`_FakeQuantize` through autograd (s and z gradient-scaled before),
    for ``torch.compile`` to fuse."""
    t = x / s if z is None else x / s + z
    q = round_ste(t.clamp(qn, qp))
    return (q if z is None else q - z) * s


_compiled_fake_quantize = None


def fake_quantize(x: torch.Tensor, s: torch.Tensor, z: torch.Tensor | None, qn: int, qp: int,
                  grad_factor: float = 1.0, fused: bool | str = False) -> torch.Tensor:
    """``s * (round_ste(clamp(x / s + z, qn, qp)) - z)`` (``z`` None for symmetric grids), with
    the gradients of ``s`` and ``z`` multiplied by ``grad_factor``; ``s`` and ``z`` broadcast
    against ``x``.

    ``fused=True`` runs forward and backward as one pass each over ``x``: on float32 CPU
    tensors through the low-bit extension's compiled pass
    (:mod:`mmext.quant.fake_quantize_kernel`: the eager values), elsewhere (or without the
    extension, or for layouts it does not take) through ``torch.compile``
    (:func:`compiled_fake_quantize`). ``fused='kernel'`` takes the compiled pass where it
    applies and the eager formula elsewhere, never compiling (the low-bit runtime's
    fake-quantized attention).
    """
    if not fused:
        return _FakeQuantize.apply(x, s, z, qn, qp, grad_factor)
    from .fake_quantize_kernel import kernel_fake_quantize, kernel_layout
    layout = kernel_layout(x, s, z)
    if layout is not None:
        return kernel_fake_quantize(layout[0], s, z, qn, qp, grad_factor, layout[1])
    if fused == 'kernel':
        return _FakeQuantize.apply(x, s, z, qn, qp, grad_factor)
    return compiled_fake_quantize(x, s, z, qn, qp, grad_factor)


def compiled_fake_quantize(x: torch.Tensor, s: torch.Tensor, z: torch.Tensor | None, qn: int,
                           qp: int, grad_factor: float = 1.0) -> torch.Tensor:
    """:func:`fake_quantize`'s formula through ``torch.compile``, which fuses forward and
    backward into one pass each over ``x`` (2-3x faster than eager on large CPU tensors); the
    first call per input layout compiles for seconds. Dynamo's recompilation limit is raised to
    64 for these calls only (a model has many layouts). Without a working compiler it falls back
    to eager with a warning; :func:`fused_fake_quantize_active` says which path runs."""
    global _compiled_fake_quantize
    import torch._dynamo
    if _compiled_fake_quantize is None:
        _compiled_fake_quantize = torch.compile(_fake_quantize_composite, dynamic=True)
    s = grad_scale(s, grad_factor)
    z = None if z is None else grad_scale(z, grad_factor)
    try:
        limit = max(torch._dynamo.config.cache_size_limit, 64)
        with torch._dynamo.config.patch(cache_size_limit=limit):
            return _compiled_fake_quantize(x, s, z, qn, qp)
    except Exception as error:  # no C++ / triton toolchain: keep training, say so
        import warnings
        warnings.warn(f'fused fake quantization failed ({type(error).__name__}: {error}); '
                      'falling back to eager kernels', stacklevel=2)
        _compiled_fake_quantize = _fake_quantize_composite
        return _fake_quantize_composite(x, s, z, qn, qp)


def fused_fake_quantize_active() -> bool:
    """Whether :func:`compiled_fake_quantize` runs compiled (False before its first call and
    after a fall-back to eager)."""
    return _compiled_fake_quantize not in (None, _fake_quantize_composite)


def _broadcast(param: torch.Tensor, x: torch.Tensor, dim: int | None) -> torch.Tensor:
    """View a per-tensor (1,) or per-channel (C,) parameter so it broadcasts against ``x``."""
    if dim is None:
        return param
    shape = [1] * x.dim()
    shape[dim] = -1
    return param.view(shape)


def _reduce_dims(x: torch.Tensor, dim: int | None) -> list[int]:
    dim = None if dim is None else dim % x.dim()
    return [d for d in range(x.dim()) if d != dim]


def _all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Average ``t`` over the processes of a distributed run (a no-op otherwise)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


class _StepQuantizer(nn.Module):
    """Shared parts of LSQ and LSQ+: bit range, learnable step, lazy data-driven init.

    Args:
        bits: 2..8, or 32 for the identity.
        signed: grid [-2^(b-1), 2^(b-1) - 1] if True, else [0, 2^b - 1].
        num_channels: number of scale groups along ``channel_dim``; None for one per tensor.
        channel_dim: the dimension of the groups (0: output channels of a weight; -1: the
            features of a linear input; 1: the heads of a (B, H, N, d) attention tensor).
        init_batches: forward passes whose statistics are averaged into the initial values.
        calibration: None for the data-free LSQ initialisation in the first forward passes;
            ``dict(method='mse' | 'percentile' | 'minmax', batches=16, ...)``
            (:class:`~mmext.quant.observers.CalibrationSpec`) to have the step set by
            calibration (:func:`mmext.quant.calibration.calibrate_model`, run by
            ``mmext.QuantCalibrationHook``) before the first forward, which it then requires.

    Attributes (not saved): ``fused`` runs the fake quantization in one compiled pass, or
    through ``torch.compile`` where that does not apply (:func:`fake_quantize`;
    ``ModuleSwap(fused=True)`` sets it on every quantizer it builds; ``'kernel'``: the pass or
    eager, never compiling);
    ``observer``, while calibration sets it, receives every input, which passes unchanged.
    """

    fused = False
    asymmetric = False  # has a zero point

    def __init__(self, bits: int = 4, signed: bool = True, num_channels: int | None = None,
                 channel_dim: int = 0, init_batches: int = 1, calibration: dict | None = None):
        super().__init__()
        self.bits = check_bits(bits, MULTI_BIT + (FULL_PRECISION, ), type(self).__name__)
        self.signed = signed
        self.qn = -(2 ** (bits - 1)) if signed else 0
        self.qp = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
        self.channel_dim = None if num_channels is None else channel_dim
        if init_batches < 1:
            raise ValueError(f'init_batches must be >= 1, got {init_batches}')
        self.init_batches = init_batches
        self.scale = nn.Parameter(torch.ones(num_channels or 1))
        self.register_buffer('init_count', torch.zeros((), dtype=torch.long))
        self._initialized = False
        self.calibration = CalibrationSpec.build(calibration)
        self.observer = None
        self.qualified_name = type(self).__name__  # the module swap sets the model's name

    @property
    def enabled(self) -> bool:
        return self.bits != FULL_PRECISION

    @property
    def initialized(self) -> bool:
        # cached once true (reading the buffer costs a sync per call); a load resets it
        if not self._initialized:
            self._initialized = bool(self.init_count >= self.init_batches)
        return self._initialized

    def _load_from_state_dict(self, *args, **kwargs):
        self._initialized = False
        super()._load_from_state_dict(*args, **kwargs)

    def _check_channels(self, x: torch.Tensor) -> None:
        if self.channel_dim is not None and x.shape[self.channel_dim] != self.scale.numel():
            raise ValueError(
                f'{type(self).__name__} has {self.scale.numel()} scale groups along dim '
                f'{self.channel_dim}, but the input has shape {tuple(x.shape)}; set '
                'num_channels to the size of that dimension')

    def _check_calibrated(self) -> None:
        """Refuse to run with a step that calibration was meant to set but did not."""
        if self.calibration is not None:
            raise RuntimeError(
                f'{self.qualified_name} is set to be calibrated ({self.calibration.method!r}) '
                'but has no step yet: add custom_hooks=[dict(type="mmext.QuantCalibrationHook")] '
                'to the config, load a calibrated checkpoint (tools/deploy/calibrate.py), or call '
                'mmext.quant.calibrate_model(model, batches) first; quant.calibration=None '
                'selects the data-free LSQ initialisation instead')

    def params_for_range(self, lo: torch.Tensor, hi: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step (and zero point, or None) whose grid spans the clipping range [lo, hi]
        (tensors of equal shape, one value per scale group and candidate)."""
        raise NotImplementedError

    @torch.no_grad()
    def set_range(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Set the step (and zero point) from a clipping range per group (each of the size of
        ``scale``, or one value for all groups) and mark the quantizer initialised.

        A group whose range is narrower than 1% of the widest group's (a dead channel, a
        constant input) is widened to that: its step would otherwise be so small that it stays
        dead, or its gradient explodes, once training moves its input."""
        lo, hi = lo.float(), hi.float()
        floor = 0.01 * (hi - lo).max()
        hi = torch.where(hi - lo < floor, lo + floor, hi)
        scale, zero_point = self.params_for_range(lo, hi)
        self.scale.copy_(torch.broadcast_to(scale.reshape(-1), self.scale.shape).clamp_min(1e-8))
        if zero_point is not None:
            self.zero_point.copy_(torch.broadcast_to(zero_point.reshape(-1),
                                                     self.zero_point.shape))
        self.init_count.fill_(self.init_batches)
        self._initialized = False

    @torch.no_grad()
    def calibrate_weight(self, w: torch.Tensor, spec: CalibrationSpec | None = None) -> None:
        """Set the step from the tensor this quantizer quantizes (a layer's weight), exactly,
        by ``spec`` (default: the quantizer's own calibration)."""
        spec = spec or self.calibration
        if spec is None:
            raise ValueError(f'{type(self).__name__}.calibrate_weight needs a calibration spec')
        self._check_channels(w)
        lo, hi = weight_range(w, spec, self.channel_dim, self.params_for_range, self.qn,
                              self.qp, self.asymmetric)
        self.set_range(lo, hi)

    def _init_step(self, value: torch.Tensor, param: torch.Tensor) -> None:
        """Fold this batch's estimate into the running mean of the first init_batches."""
        n = int(self.init_count)
        value = _all_reduce_mean(value.detach().reshape(param.shape).to(param.dtype))
        param.data.mul_(n / (n + 1)).add_(value / (n + 1))

    def extra_repr(self) -> str:
        groups = 'tensor' if self.channel_dim is None else \
            f'{self.scale.numel()} channels (dim {self.channel_dim})'
        return f'bits={self.bits}, signed={self.signed}, scale per {groups}'


@QUANTIZERS.register_module()
class LSQQuantizer(_StepQuantizer):
    """LSQ: symmetric b-bit fake quantization with a learnable step (for weights).

    ``forward(w)``: w (any shape) -> w_q (same shape), ``w_q = s * round_ste(clamp(w / s, Qn,
    Qp))``. See :class:`_StepQuantizer` for the arguments.
    """

    def params_for_range(self, lo, hi):
        """Symmetric: ``s = max(|lo|, |hi|) / Qp`` (signed), ``hi / Qp`` (unsigned)."""
        top = torch.maximum(lo.abs(), hi.abs()) if self.signed else hi.clamp_min(0)
        return top / self.qp, None

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return w
        if self.observer is not None:
            self.observer(w)
            return w
        self._check_channels(w)
        if not self.initialized:
            self._check_calibrated()
            with torch.no_grad():
                mean_abs = w.abs().mean(dim=_reduce_dims(w, self.channel_dim))
                self._init_step((2 * mean_abs / math.sqrt(self.qp)).clamp_min(1e-8), self.scale)
                self.init_count += 1
        s = _broadcast(self.scale, w, self.channel_dim)
        return fake_quantize(w, s, None, self.qn, self.qp, self.gradient_factor(w), self.fused)

    def gradient_factor(self, w: torch.Tensor) -> float:
        """LSQ's factor on the step's gradient: ``1 / sqrt(numel(w) Qp)``."""
        return 1.0 / math.sqrt(w.numel() * self.qp)


@QUANTIZERS.register_module()
class LSQPlusQuantizer(_StepQuantizer):
    """LSQ+: asymmetric b-bit fake quantization with a learnable step and zero point (for
    activations).

    ``forward(x)``: x (any shape, batch first) -> x_q (same shape),
    ``x_q = s * (round_ste(clamp(x / s + z, Qn, Qp)) - z)``; ``z`` is in quantization units.
    Initial values, averaged over the first ``init_batches`` forward passes (10 by default):
    ``s0 = 2 mean|x| / sqrt(Qp)`` and ``z0 = Qn - min(x) / s0`` (the batch minimum maps to Qn).
    Use ``signed=False`` for non-negative inputs (after ReLU, softmax probabilities).
    """

    asymmetric = True

    def __init__(self, bits: int = 4, signed: bool = True, num_channels: int | None = None,
                 channel_dim: int = -1, init_batches: int = 10, calibration: dict | None = None):
        super().__init__(bits, signed, num_channels, channel_dim, init_batches, calibration)
        self.zero_point = nn.Parameter(torch.zeros(num_channels or 1))

    def params_for_range(self, lo, hi):
        """Asymmetric: ``s = (hi - lo) / (Qp - Qn)``, ``z = round(Qn - lo / s)`` (lo maps to
        Qn and hi to Qp, within s / 2), the range first widened to hold 0. Zero is then a level
        exactly (inputs with many exact zeros keep them), and a constant input (a bias passed
        through attention over zero queries, say) gets no range of width 0, whose step would be
        tiny and whose gradients would explode once training moves the input off it."""
        lo, hi = lo.clamp_max(0), hi.clamp_min(0)
        scale = ((hi - lo) / (self.qp - self.qn)).clamp_min(1e-8)
        return scale, (self.qn - lo / scale).round()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.observer is not None:
            self.observer(x)
            return x
        self._check_channels(x)
        if not self.initialized and self.calibration is not None:
            self._check_calibrated()
        if not self.initialized and (self.training or self.init_count == 0):
            with torch.no_grad():
                dims = _reduce_dims(x, self.channel_dim)
                s0 = (2 * x.abs().mean(dim=dims) / math.sqrt(self.qp)).clamp_min(1e-8)
                x_min = x.amin(dim=dims) if dims else x
                self._init_step(s0, self.scale)
                self._init_step(self.qn - x_min / s0, self.zero_point)
                self.init_count += 1
        s = _broadcast(self.scale, x, self.channel_dim)
        z = _broadcast(self.zero_point, x, self.channel_dim)
        return fake_quantize(x, s, z, self.qn, self.qp, self.gradient_factor(x), self.fused)

    def gradient_factor(self, x: torch.Tensor) -> float:
        """LSQ's factor on the step's and zero point's gradients: ``1 / sqrt(N Qp)`` with N
        the size of one sample of ``x`` (batch first)."""
        return 1.0 / math.sqrt(x[0].numel() * self.qp)


# --------------------------------------------------------------------------- 1-bit binarizers
def _ste_gradient(grad: torch.Tensor, x: torch.Tensor, ste: str) -> torch.Tensor:
    """``grad * d sign(x) / dx`` as each straight-through estimator defines the derivative.

    The masks are float (an in-place comparison writes 1.0 / 0.0 in the tensor's dtype): on the
    CPU a bool mask, converted to float or multiplied into a float tensor, takes torch's slow
    path (3-5x a float multiply here, about 50x in place). The same values bit for bit as the
    formulas written out; ``rsub(a, 2, alpha=2)`` rounds ``2 - 2a`` once, as ``2 - 2 * a``
    does (``2a`` is exact)."""
    if ste == 'identity':  # the multiply, not grad itself: it gives a NaN the formula's bits
        return grad * torch.ones_like(x)
    if ste == 'clip':
        return grad * x.abs().le_(1)
    if ste == 'approx_sign':  # Bi-Real Net: derivative of the piecewise quadratic ApproxSign
        a = x.abs()
        return grad * torch.rsub(a, 2, alpha=2).mul_(a.le_(1))
    if ste == 'swish':  # BNN+ SignSwish with beta = 5
        beta = 5.0
        bx = beta * x
        return grad * (beta * (2 - bx * torch.tanh(bx / 2)) / (1 + torch.cosh(bx)))
    raise ValueError(f'unknown ste {ste!r}; choose one of {STE_CHOICES}')


STE_CHOICES = ('identity', 'clip', 'approx_sign', 'swish')


class _SignSTE(torch.autograd.Function):
    """``sign`` with +1 at 0 (unlike ``torch.sign``) and a selectable backward."""

    @staticmethod
    def forward(ctx, x, ste):
        ctx.save_for_backward(x)
        ctx.ste = ste
        # 1.0 / 0.0 from an in-place comparison, then 2 t - 1: float passes only (torch.where
        # and bool masks take torch's slow CPU path)
        return x.clone().ge_(0).mul_(2).sub_(1)

    @staticmethod
    def backward(ctx, grad):
        (x, ) = ctx.saved_tensors
        return _ste_gradient(grad, x, ctx.ste), None


def sign_ste(x: torch.Tensor, ste: str = 'clip') -> torch.Tensor:
    """+1 where x >= 0, else -1; gradient by the estimator ``ste`` (see ``STE_CHOICES``)."""
    if ste not in STE_CHOICES:
        raise ValueError(f'unknown ste {ste!r}; choose one of {STE_CHOICES}')
    return _SignSTE.apply(x, ste)


@QUANTIZERS.register_module()
class SignBinarizer(nn.Module):
    """Binarize activations to {-1, +1}: ``forward(x)`` -> ``sign(x)`` (same shape).

    Args:
        ste: the gradient estimator: 'identity' (plain STE), 'clip' (1 inside |x| <= 1, BNN),
            'approx_sign' (2 - 2|x| inside |x| <= 1, Bi-Real Net) or 'swish' (SignSwish, BNN+).
    """

    bits = 1

    def __init__(self, ste: str = 'approx_sign'):
        super().__init__()
        if ste not in STE_CHOICES:
            raise ValueError(f'unknown ste {ste!r}; choose one of {STE_CHOICES}')
        self.ste = ste

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_ste(x, self.ste)

    def extra_repr(self) -> str:
        return f'ste={self.ste!r}'


@QUANTIZERS.register_module()
class RSign(SignBinarizer):
    """ReActNet's sign with a learnable per-channel threshold: ``sign(x - gamma)``.

    Args:
        num_channels: size of ``x`` along ``channel_dim`` (gamma starts at 0).
        channel_dim: 1 for (B, C, H, W) feature maps, -1 for (B, N, C) tokens.
        ste: as :class:`SignBinarizer`, applied to ``x - gamma``.
    """

    def __init__(self, num_channels: int, channel_dim: int = 1, ste: str = 'approx_sign'):
        super().__init__(ste)
        self.channel_dim = channel_dim
        self.threshold = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_ste(x - _broadcast(self.threshold, x, self.channel_dim), self.ste)


@QUANTIZERS.register_module()
class WeightBinarizer(nn.Module):
    """Binarize weights to ``a * sign(w)`` with ``a = mean|w|`` per output channel.

    ``forward(w)``: w (C_out, ...) -> (C_out, ...) with values +-a_c per output channel c.

    Args:
        learnable_scale: if False (Bi-Real / ReActNet) ``a`` is recomputed from ``w`` and
            detached; if True (XNOR++-style) it is a parameter initialised from the first ``w``
            and needs ``num_channels``.
        num_channels: output channels, for a learnable scale.
        ste: gradient estimator of sign with respect to w ('clip' by default).
    """

    bits = 1

    def __init__(self, learnable_scale: bool = False, num_channels: int | None = None,
                 ste: str = 'clip'):
        super().__init__()
        if learnable_scale and num_channels is None:
            raise ValueError('WeightBinarizer(learnable_scale=True) needs num_channels')
        if ste not in STE_CHOICES:
            raise ValueError(f'unknown ste {ste!r}; choose one of {STE_CHOICES}')
        self.ste = ste
        self.learnable_scale = learnable_scale
        if learnable_scale:
            self.scale = nn.Parameter(torch.ones(num_channels))
            self.register_buffer('init_count', torch.zeros((), dtype=torch.long))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        mean_abs = w.abs().mean(dim=_reduce_dims(w, 0))
        if self.learnable_scale:
            if self.init_count == 0:
                self.scale.data.copy_(mean_abs.detach())
                self.init_count += 1
            a = self.scale
        else:
            a = mean_abs.detach()
        return sign_ste(w, self.ste) * _broadcast(a, w, 0)

    def extra_repr(self) -> str:
        return f'learnable_scale={self.learnable_scale}, ste={self.ste!r}'


@QUANTIZERS.register_module()
class LearnableScaleBinarizer(nn.Module):
    """Two-level 1-bit quantizer with a learnable scale and zero point (Bi-ViT's attention).

    ``forward(x)``: x -> ``s * (sign(x / s + z) - z)`` (same shape), whose two levels are
    ``s(1 - z)`` and ``s(-1 - z)``. The sign's gradient is 1 inside ``|x / s + z| <= 1`` and 0
    outside; gradients of ``s`` and ``z`` are scaled by ``1 / sqrt(numel per sample)``.

    Args:
        num_channels: groups along ``channel_dim`` (heads for a (B, H, N, d) tensor); None for
            one scale per tensor.
        channel_dim: 1 for heads.
        zero_point_init: 'zero' (q, k, v) or 'uniform_attention' (softmax probabilities:
            ``z0 = -(1 / N) / s0`` puts the threshold at uniform attention over the last dim).
        init_batches: forward passes averaged into ``s0 = 2 mean|x|``.
    """

    bits = 1

    def __init__(self, num_channels: int | None = None, channel_dim: int = 1,
                 zero_point_init: str = 'zero', init_batches: int = 1):
        super().__init__()
        if zero_point_init not in ('zero', 'uniform_attention'):
            raise ValueError(f"zero_point_init must be 'zero' or 'uniform_attention', got "
                             f'{zero_point_init!r}')
        self.channel_dim = None if num_channels is None else channel_dim
        self.zero_point_init = zero_point_init
        self.init_batches = init_batches
        self.scale = nn.Parameter(torch.ones(num_channels or 1))
        self.zero_point = nn.Parameter(torch.zeros(num_channels or 1))
        self.register_buffer('init_count', torch.zeros((), dtype=torch.long))
        self._init_done = False

    def _needs_init(self) -> bool:
        # the buffer is read (a device sync) only until initialisation is over
        if self._init_done:
            return False
        n = int(self.init_count)
        self._init_done = n >= self.init_batches
        return not self._init_done and (self.training or n == 0)

    def _load_from_state_dict(self, *args, **kwargs):
        self._init_done = False
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._needs_init():
            with torch.no_grad():
                n = int(self.init_count)
                s0 = _all_reduce_mean(2 * x.abs().mean(dim=_reduce_dims(x, self.channel_dim)))
                s0 = s0.clamp_min(1e-8).reshape(self.scale.shape)
                self.scale.data.mul_(n / (n + 1)).add_(s0 / (n + 1))
                if self.zero_point_init == 'uniform_attention':
                    self.zero_point.data.copy_(-(1.0 / x.shape[-1]) / self.scale.data)
                self.init_count += 1
        g = 1.0 / math.sqrt(x[0].numel())
        s = _broadcast(grad_scale(self.scale, g), x, self.channel_dim)
        z = _broadcast(grad_scale(self.zero_point, g), x, self.channel_dim)
        return (sign_ste(x / s + z, 'clip') - z) * s

    def extra_repr(self) -> str:
        groups = 'tensor' if self.channel_dim is None else \
            f'{self.scale.numel()} channels (dim {self.channel_dim})'
        return f'scale per {groups}, zero_point_init={self.zero_point_init!r}'
