"""Low-rank factorisation of a trained :class:`~lowbit.quant.train.net.ZooNet` (issue 20).

* A fully connected layer ``W (m x n)`` becomes two matrix products by its truncated SVD
  ``W ~ U_r S_r V_r^T``: a factor layer ``sqrt(S_r) V_r^T (r x n)`` and the layer
  ``U_r sqrt(S_r) (m x r)``, ``r (m + n)`` multiply-accumulates instead of ``m n`` (Lebedev &
  Lempitsky; Goel et al.).
* A convolution ``W (N, K, K, C)`` becomes up to three by Tucker-2 (the higher-order SVD along the
  input and output channel modes): a 1x1 convolution ``C -> r1``, the ``K x K`` core convolution
  ``r1 -> r2`` (the layer's stride and padding), and a 1x1 convolution ``r2 -> N``. A mode whose
  rank is not below its channel count keeps no 1x1 convolution.
* Or a convolution becomes three by CP (``method="cp"``, :func:`cp_factors`): a 1x1 convolution
  ``C -> R``, a ``K x K`` *depthwise* convolution of the ``R`` channels (the layer's stride and
  padding; a ``dwconv`` layer, the integer graph's :class:`~lowbit.ir.graph.DepthwiseConv`) and a
  1x1 convolution ``R -> N``: ``R (C + K*K + N)`` weights instead of ``N K*K C``. The CP is of the
  3-way tensor ``(N, C, K*K)``, the two spatial modes merged, so each rank-1 term has a full
  ``K x K`` filter; the 4-way CP of Lebedev et al. (``K x 1`` and ``1 x K`` depthwise windows) is
  not offered, lowbit's windows being square. (With bipolar activations the original layer pads
  with ``-1``, the factored one with the value 0 after its first 1x1 convolution: the two differ
  on the border pixels until fine-tuning.)

The rank is an integer ``r`` (every mode, capped by the channels) or an energy target ``e``
in ``(0, 1]``: the smallest rank whose singular values keep ``e`` of the squared sum
(:func:`choose_rank`); for CP the smallest rank whose decomposition keeps ``e`` of the kernel's
squared norm, ``1 - |W - W_R|^2 / |W|^2 >= e`` (what a truncated SVD keeps, too). A layer whose
factorisation would not save multiply-accumulates stays as it is. Only hidden layers are
factorised (the last layer's scores take no offset).

Every factor but the last is a *bottleneck* layer (:class:`~lowbit.quant.train.net.LayerSpec`):
no batch-norm or activation function, a signed ``B``-bit linear quantizer whose scale is
calibrated on data (the 99.99th percentile of ``|v|`` at ``2^(B-1) - 1``). Factors keep the
original layer's weight quantizer; the last factor keeps its batch-norm, activation and pool. The
integer graph holds each factor as its own :class:`~lowbit.ir.graph.MatMulThreshold` with its own
thresholds, and predicts exactly like the network.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, replace

import numpy as np

from ... import LowbitError
from .net import LayerSpec, ZooNet

__all__ = [
    "choose_rank",
    "svd_factors",
    "tucker2_factors",
    "cp_als",
    "cp_factors",
    "Factorised",
    "factorise",
    "layer_macs",
    "METHODS",
]

METHODS = ("tucker2", "cp")
"""How :func:`factorise` factorises convolutions (fully connected layers: always the SVD)."""

CP_ITERATIONS = 500
"""At most this many ALS sweeps per CP decomposition (:func:`cp_als`)."""

CP_TOLERANCE = 1e-6
"""ALS stops when a sweep lowers the relative error ``|t - t_R| / |t|`` by less than this fraction
of itself."""

logger = logging.getLogger(__name__)


def choose_rank(singular_values: np.ndarray, target: int | float) -> int:
    """The rank kept of a matrix with ``singular_values`` (descending): an integer ``target``
    (capped by their number) or, for a float ``target`` in ``(0, 1]``, the smallest ``r`` with
    ``sum(s[:r]^2) >= target * sum(s^2)`` (at least 1)."""
    s = np.asarray(singular_values, dtype=np.float64)
    if isinstance(target, bool) or not isinstance(target, (int, float)):
        raise TypeError(f"target must be an integer rank or an energy fraction, not {target!r}")
    if isinstance(target, int):
        if target < 1:
            raise ValueError(f"a rank must be at least 1, not {target!r}")
        return min(target, len(s))
    if not (math.isfinite(target) and 0 < target <= 1):
        raise ValueError(f"an energy target must be in (0, 1], not {target!r}")
    e = np.cumsum(s * s)
    if e[-1] == 0:
        return 1
    return max(1, min(len(s), int(np.searchsorted(e / e[-1], target * (1 - 1e-12)) + 1)))


def svd_factors(w: np.ndarray, target: int | float) -> tuple[np.ndarray, np.ndarray]:
    """``(V (r x n), U (m x r))`` with ``U @ V`` the best rank-``r`` approximation of ``w (m x n)``,
    ``r = choose_rank(...)``, the singular values split evenly (``sqrt(S)`` on each side)."""
    u, s, vt = np.linalg.svd(np.asarray(w, dtype=np.float64), full_matrices=False)
    r = choose_rank(s, target)
    root = np.sqrt(s[:r])
    return root[:, None] * vt[:r], u[:, :r] * root


def tucker2_factors(
    w: np.ndarray, kernel: int, channels: int, target: int | float
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Tucker-2 of a convolution ``w (N, K*K*C)`` (columns ``(ky, kx, c)``): ``(A (r1 x C), G
    (r2, K*K*r1), B (N x r2))`` with ``w ~ B G (A applied per pixel)``. ``A`` is ``None`` when
    ``r1 == C``, ``B`` when ``r2 == N`` (no 1x1 convolution on that side)."""
    n = w.shape[0]
    w4 = np.asarray(w, dtype=np.float64).reshape(n, kernel, kernel, channels)
    uc, sc, _ = np.linalg.svd(w4.transpose(3, 0, 1, 2).reshape(channels, -1), full_matrices=False)
    un, sn, _ = np.linalg.svd(w4.reshape(n, -1), full_matrices=False)
    r1, r2 = choose_rank(sc, target), choose_rank(sn, target)
    a = uc[:, :r1] if r1 < channels else np.eye(channels)
    b = un[:, :r2] if r2 < n else np.eye(n)
    core = np.einsum("nyxc,cr,ns->syxr", w4, a, b).reshape(b.shape[1], -1)
    return (a.T if r1 < channels else None), core, (b if r2 < n else None)


def _unfold(t: np.ndarray, mode: int) -> np.ndarray:
    """Mode-``mode`` unfolding of a 3-way tensor: ``(I_mode, I_p * I_q)``, ``p < q`` the other
    modes, column ``i_p * I_q + i_q``."""
    return np.moveaxis(t, mode, 0).reshape(t.shape[mode], -1)


def _khatri_rao(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Column-wise Kronecker product: row ``i_p * I_q + i_q`` is ``p[i_p] * q[i_q]``."""
    return (p[:, None, :] * q[None, :, :]).reshape(-1, p.shape[1])


def cp_als(
    t: np.ndarray,
    rank: int,
    *,
    iterations: int = CP_ITERATIONS,
    tolerance: float = CP_TOLERANCE,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """The rank-``rank`` CP decomposition ``t ~ sum_r a_r x b_r x c_r`` of a 3-way tensor by
    alternating least squares, and the energy it keeps, ``1 - |t - t_R|^2 / |t|^2``.

    Deterministic: initialised with the HOSVD (the leading ``rank`` left singular vectors of each
    unfolding; columns beyond a mode's size from ``numpy.random.default_rng(0)``), then at most
    ``iterations`` sweeps, stopping when one lowers the relative error ``|t - t_R| / |t|`` by less
    than ``tolerance`` times itself (an exact decomposition converges to rounding error). Returns
    the factors ``(A (I, R), B (J, R), C (K, R))``, components in descending norm, each column
    scaled to the cube root of its component's norm, the largest entry of each column of ``B`` and
    ``C`` positive.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive integer, not {rank!r}")
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 3:
        raise ValueError(f"t must be a 3-way tensor, not of shape {t.shape}")
    norm2 = float(np.sum(t * t))
    rng = np.random.default_rng(0)
    f = []
    for mode in range(3):
        u = np.linalg.svd(_unfold(t, mode), full_matrices=False)[0][:, :rank]
        if u.shape[1] < rank:
            u = np.hstack([u, rng.standard_normal((t.shape[mode], rank - u.shape[1]))])
        f.append(u)
    err = math.inf
    for _ in range(iterations):
        for mode in range(3):
            p, q = (f[m] for m in range(3) if m != mode)
            kr = _khatri_rao(p, q)
            f[mode] = _unfold(t, mode) @ kr @ np.linalg.pinv((p.T @ p) * (q.T @ q))
        rest = _unfold(t, 2) - f[2] @ kr.T  # the last mode's unfolding
        new = math.sqrt(float(np.sum(rest * rest)) / norm2) if norm2 > 0 else 0.0
        done = new >= err * (1 - tolerance)
        err = new
        if done:
            break
    norms = [np.linalg.norm(m, axis=0) for m in f]
    lam = norms[0] * norms[1] * norms[2]
    order = np.argsort(-lam, kind="stable")
    root = np.cbrt(lam[order])
    out = [m[:, order] / np.where(n[order] > 0, n[order], 1.0) * root for m, n in zip(f, norms)]
    for m in out[1:]:  # the sign of each column's largest entry into A
        sign = np.where(m[np.argmax(np.abs(m), axis=0), np.arange(rank)] < 0, -1.0, 1.0)
        m *= sign
        out[0] *= sign
    return (out[0], out[1], out[2]), max(0.0, 1.0 - err * err)


def cp_factors(
    w: np.ndarray, kernel: int, channels: int, target: int | float, *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CP of a convolution ``w (N, K*K*C)`` (columns ``(ky, kx, c)``) as the tensor
    ``(N, C, K*K)``: ``(B (R x C), S (R x K*K), A (N x R))`` with ``w[n, (j, c)] ~ sum_r A[n, r]
    S[r, j] B[r, c]``, a 1x1 convolution ``B``, the depthwise ``S``, a 1x1 convolution ``A``
    (:func:`cp_als`).

    ``R`` is an integer ``target`` capped by the tensor's largest possible rank (the product of
    its two smaller sizes) or, for an energy ``target`` in ``(0, 1]``, the smallest rank up to
    ``limit`` (default that cap) whose decomposition keeps ``target`` of ``|w|^2``, found by
    bisection (the energy kept grows with the rank); ``limit`` when none below it does.
    """
    choose_rank(np.ones(1), target)  # checks target
    n = w.shape[0]
    t = np.asarray(w, dtype=np.float64).reshape(n, kernel * kernel, channels).transpose(0, 2, 1)
    cap = math.prod(sorted(t.shape)[:2])
    if isinstance(target, int):
        rank = min(target, cap)
    else:  # bisection on [lo, hi]: lo keeps less than target (0: none), hi keeps it or is the top
        lo, hi = 0, min(cap, limit or cap)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if cp_als(t, mid)[1] >= target * (1 - 1e-12) else (mid, hi)
        rank = hi
    (a, b, s), fit = cp_als(t, rank)
    logger.debug("CP rank %d of a (%d, %d, %d) kernel keeps %.6f", rank, *t.shape, fit)
    return b.T, s.T, a


def layer_macs(net: ZooNet, i: int) -> int:
    """Multiply-accumulates of layer ``i`` per image (every weight, pruned or not)."""
    (shp_in, _), L = net.shapes()[i], net.layers[i]
    uses = net.params[f"W{i}"].size
    if L.windowed:
        h, w, _ = shp_in
        uses *= ((h + 2 * L.pad - L.kernel) // L.stride + 1) * (
            (w + 2 * L.pad - L.kernel) // L.stride + 1
        )
    return int(uses)


@dataclass(frozen=True)
class Factorised:
    """What :func:`factorise` did: the new network and, per original layer, the ranks kept
    (``()``: left as it was) and the multiply-accumulates before and after."""

    net: ZooNet
    ranks: tuple[tuple[int, ...], ...]
    macs_before: int
    macs_after: int


def _cp_layers(L: LayerSpec, rank: int, bits: int) -> tuple[LayerSpec, ...]:
    """The three layers of convolution ``L``'s CP at ``rank``: 1x1 ``C -> rank``, the ``K x K``
    depthwise (``L``'s stride and padding) and 1x1 ``rank -> N`` (``L``'s batch-norm,
    activation and pool)."""
    return (
        LayerSpec("conv", rank, bottleneck=bits),
        replace(L, kind="dwconv", out=rank, pool=0, bottleneck=bits),
        LayerSpec("conv", L.out, pool=L.pool),
    )


def factorise(
    net: ZooNet,
    target: int | float,
    *,
    bits: int = 8,
    calibration: np.ndarray,
    method: str = "tucker2",
) -> Factorised:
    """Factorise every hidden ``fc`` (SVD) and ``conv`` (``method``: ``"tucker2"`` or ``"cp"``)
    layer of ``net`` at ``target`` (an integer rank or an energy in ``(0, 1]``); bottleneck
    quantizers of ``bits`` bits, their scales calibrated on the integer inputs ``calibration``.
    Layers whose factorisation saves no multiply-accumulates (for a CP energy target: none of the
    ranks that save some keeps the energy), and layers with pruning masks, sharing or INQ state,
    stay as they are.
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 2..8, not {bits!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    choose_rank(np.ones(1), target)  # checks target
    if any(L.bottleneck for L in net.layers):
        raise LowbitError("the network is already factorised")
    layers: list[LayerSpec] = []
    specs = []
    params: dict = {"tau": net.params["tau"].copy()}
    state: dict = {}
    ranks: list[tuple[int, ...]] = []
    bottlenecks: list[int] = []
    shapes = net.shapes()
    for i, L in enumerate(net.layers):
        w = net.weight_values(i)
        factors: list[tuple[LayerSpec, np.ndarray]] = []
        plain = (
            i == net.n_layers - 1
            or any(f"{k}{i}" in net.state for k in ("mask", "share_idx", "inq_frozen"))
            or net.weight_specs[i].kind == "ttq"
        )
        if not plain and L.kind == "fc":
            v, u = svd_factors(w, target)
            factors = [(LayerSpec("fc", v.shape[0], bottleneck=bits), v), (L, u)]
        elif not plain and method == "cp":
            c = shapes[i][0][2]
            one = replace(
                net,
                layers=_cp_layers(L, 1, bits),
                input_shape=shapes[i][0],
                params={
                    "W0": np.zeros((1, c)),
                    "W1": np.zeros((1, L.kernel**2)),
                    "W2": np.zeros((L.out, 1)),
                },
            )
            per_rank = sum(layer_macs(one, j) for j in range(3))  # MACs are linear in the rank
            limit = (layer_macs(net, i) - 1) // per_rank  # the largest rank saving MACs
            if limit >= 1:  # rank limit + 1: the energy needs more, no saving (refused below)
                cp = cp_factors(w, L.kernel, c, target, limit=limit + 1)
                factors = list(zip(_cp_layers(L, cp[0].shape[0], bits), cp))
        elif not plain:
            c = shapes[i][0][2]
            a, core, b = tucker2_factors(w, L.kernel, c, target)
            r1 = c if a is None else a.shape[0]
            core_spec = replace(L, out=core.shape[0], pool=0 if b is not None else L.pool)
            if a is not None:
                factors.append((LayerSpec("conv", r1, bottleneck=bits), a))
            if b is not None:
                core_spec = replace(core_spec, bottleneck=bits)
            factors.append((core_spec, core))
            if b is not None:
                factors.append((LayerSpec("conv", L.out, pool=L.pool), b))
        if factors:
            probe = replace(
                net,
                layers=tuple(f[0] for f in factors),
                input_shape=shapes[i][0],
                params={f"W{j}": f[1] for j, f in enumerate(factors)},
            )
            after = sum(layer_macs(probe, j) for j in range(len(factors)))
            if after >= layer_macs(net, i) or len(factors) == 1:
                factors = []
        if not factors:  # as it was: every parameter and state entry of the layer
            k = len(layers)
            layers.append(L)
            specs.append(net.weight_specs[i])
            for src, dst in ((net.params, params), (net.state, state)):
                for key, val in src.items():
                    m = re.fullmatch(r"([A-Za-z_]+?)([0-9]+)", key)
                    if m and int(m[2]) == i:
                        dst[f"{m[1]}{k}"] = val.copy() if isinstance(val, np.ndarray) else val
            ranks.append(())
            continue
        ranks.append(tuple(f[0].out for f in factors[:-1]))
        for spec, wf in factors:
            k = len(layers)
            layers.append(spec)
            specs.append(net.weight_specs[i])
            params[f"W{k}"] = np.array(wf, dtype=np.float64)
            if spec.bottleneck:
                bottlenecks.append(k)
                state[f"bscale{k}"] = 1.0
            else:  # the last factor: the layer's batch-norm
                params[f"gamma{k}"] = net.params[f"gamma{i}"].copy()
                params[f"beta{k}"] = net.params[f"beta{i}"].copy()
                state[f"mean{k}"] = net.state[f"mean{i}"].copy()
                state[f"var{k}"] = net.state[f"var{i}"].copy()
    new = replace(net, layers=tuple(layers), weight_specs=tuple(specs), params=params, state=state)
    half = 1 << (bits - 1)
    for k in bottlenecks:  # in network order: each scale sees the earlier ones
        v = np.abs(new.pre_activation(calibration, k))
        top = float(np.percentile(v, 99.99)) if v.size else 0.0
        new.state[f"bscale{k}"] = top / (half - 1) if top > 0 else 1.0
    before = sum(layer_macs(net, i) for i in range(net.n_layers))
    after = sum(layer_macs(new, i) for i in range(new.n_layers))
    logger.info("low-rank: ranks %s, MACs %d -> %d", ranks, before, after)
    return Factorised(new, tuple(ranks), before, after)
