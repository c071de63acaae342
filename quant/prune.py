"""Pruning: magnitude masks (layer-wise or global), the gradual cubic schedule, filter pruning.

* Magnitude pruning zeroes exactly ``round(s * n)`` weights: the smallest magnitudes, ties broken
  by the lower flat index (a stable sort), so the zero count is exact and reproducible.
* Zhu & Gupta (2017): ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3`` for
  ``t0 <= t <= t0 + n dt``, ``s_i`` before and ``s_f`` after.
* Filter pruning (Li et al. 2017): drop the output channels with the smallest L1 norms (or
  another score, such as the APoZ of Hu et al. 2016), which shrinks the layer, its batch-norm and
  the next layer's inputs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

__all__ = ["cubic_sparsity", "magnitude_mask", "global_magnitude_masks", "prune_filters"]


def cubic_sparsity(t: float, *, s_i: float, s_f: float, t0: float, n: int, dt: float) -> float:
    """Zhu & Gupta's gradual schedule at step ``t`` (``n`` pruning steps ``dt`` apart from
    ``t0``)."""
    if n < 1 or dt <= 0:
        raise ValueError(f"n must be >= 1 and dt > 0, not n={n!r}, dt={dt!r}")
    if t <= t0:
        return float(s_i)
    frac = min(1.0, (t - t0) / (n * dt))
    return float(s_f + (s_i - s_f) * (1.0 - frac) ** 3)


def _count(sparsity: float, n: int) -> int:
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity must be in [0, 1], not {sparsity!r}")
    return int(np.floor(sparsity * n + 0.5))


def magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Boolean keep-mask of ``w`` with exactly ``round(sparsity * w.size)`` smallest magnitudes
    pruned."""
    w = np.asarray(w)
    k = _count(sparsity, w.size)
    order = np.argsort(np.abs(w).ravel(), kind="stable")
    mask = np.ones(w.size, dtype=bool)
    mask[order[:k]] = False
    return mask.reshape(w.shape)


def global_magnitude_masks(weights: dict, sparsity: float) -> dict:
    """Keep-masks over several tensors together: exactly ``round(sparsity * total)`` pruned in
    all."""
    keys = list(weights)
    flat = np.concatenate([np.abs(np.asarray(weights[k])).ravel() for k in keys])
    k = _count(sparsity, flat.size)
    order = np.argsort(flat, kind="stable")
    keep = np.ones(flat.size, dtype=bool)
    keep[order[:k]] = False
    out, pos = {}, 0
    for key in keys:
        n = np.asarray(weights[key]).size
        out[key] = keep[pos : pos + n].reshape(np.asarray(weights[key]).shape)
        pos += n
    return out


def prune_filters(net, layer: int, keep: int, *, scores=None):
    """A copy of ``net`` (a :class:`~lowbit.quant.train.net.ZooNet`) whose layer ``layer`` keeps
    only its ``keep`` output channels of largest L1 norm (in their original order); with
    ``scores`` (one per channel), those of largest score instead (ties: the lower index), e.g.
    minus the APoZ of :func:`~lowbit.quant.train.loop.apoz`.

    The layer's weights, batch-norm and state shrink, and so do the next layer's input columns (for
    a convolution's ``(ky, kx, c)`` columns, a flattened ``(h, w, c)`` image, or a vector).
    """

    if not 0 <= layer < net.n_layers - 1:
        raise ValueError(
            f"layer must be a hidden layer index in [0, {net.n_layers - 2}], not {layer!r}"
        )
    w = net.params[f"W{layer}"]
    if not 1 <= keep <= w.shape[0]:
        raise ValueError(
            f"keep must be in [1, {w.shape[0]}] (layer {layer}'s channels), not {keep!r}"
        )
    if scores is None:
        scores = np.abs(w).sum(axis=1)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (w.shape[0],):
        raise ValueError(
            f"scores must have one entry per channel ({w.shape[0]}), not shape {scores.shape}"
        )
    kept = np.sort(np.argsort(-scores, kind="stable")[:keep])
    new = net.copy()
    for key in (f"W{layer}", f"gamma{layer}", f"beta{layer}"):
        new.params[key] = new.params[key][kept]
    for key in (f"mean{layer}", f"var{layer}", f"mask{layer}"):
        if key in new.state:
            new.state[key] = new.state[key][kept]
    nxt = layer + 1
    out_shape = net.shapes()[layer][1]
    c = out_shape[-1]
    cols = np.arange(net.params[f"W{nxt}"].shape[1]).reshape(-1, c)[:, kept].ravel()
    new.params[f"W{nxt}"] = new.params[f"W{nxt}"][:, cols]
    if f"mask{nxt}" in new.state:
        new.state[f"mask{nxt}"] = new.state[f"mask{nxt}"][:, cols]
    layers = list(net.layers)
    layers[layer] = replace(layers[layer], out=int(keep))
    new.layers = tuple(layers)
    return new
