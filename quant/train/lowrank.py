"""Low-rank factorisation of a trained :class:`~lowbit.quant.train.net.ZooNet` (issue 20).

* A fully connected layer ``W (m x n)`` becomes two matrix products by its truncated SVD
  ``W ~ U_r S_r V_r^T``: a factor layer ``sqrt(S_r) V_r^T (r x n)`` and the layer
  ``U_r sqrt(S_r) (m x r)``, ``r (m + n)`` multiply-accumulates instead of ``m n`` (Lebedev &
  Lempitsky; Goel et al.).
* A convolution ``W (N, K, K, C)`` becomes up to three by Tucker-2 (the higher-order SVD along the
  input and output channel modes): a 1x1 convolution ``C -> r1``, the ``K x K`` core convolution
  ``r1 -> r2`` (the layer's stride and padding), and a 1x1 convolution ``r2 -> N``. A mode whose
  rank is not below its channel count keeps no 1x1 convolution. CP decomposition, which gives
  depthwise ``K x 1`` and ``1 x K`` convolutions, is not offered: lowbit has no depthwise
  convolution yet (issue 19).

The rank is an integer ``r`` (every mode, capped by the channels) or an energy target ``e`` in
``(0, 1]``: the smallest rank whose singular values keep ``e`` of the squared sum
(:func:`choose_rank`). A layer whose factorisation would not save multiply-accumulates stays as it
is. Only hidden layers are factorised (the last layer's scores take no offset).

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

__all__ = ["choose_rank", "svd_factors", "tucker2_factors", "Factorised", "factorise", "layer_macs"]

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


def layer_macs(net: ZooNet, i: int) -> int:
    """Multiply-accumulates of layer ``i`` per image (every weight, pruned or not)."""
    (shp_in, _), L = net.shapes()[i], net.layers[i]
    uses = net.params[f"W{i}"].size
    if L.kind == "conv":
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


def factorise(
    net: ZooNet, target: int | float, *, bits: int = 8, calibration: np.ndarray
) -> Factorised:
    """Factorise every hidden ``fc`` (SVD) and ``conv`` (Tucker-2) layer of ``net`` at ``target``
    (an integer rank or an energy in ``(0, 1]``); bottleneck quantizers of ``bits`` bits, their
    scales calibrated on the integer inputs ``calibration``. Layers whose factorisation saves no
    multiply-accumulates, and layers with pruning masks, sharing or INQ state, stay as they are.
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 2..8, not {bits!r}")
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
