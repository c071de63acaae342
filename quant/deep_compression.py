"""Deep Compression (Han et al., ICLR 2016) for the EIE-style sparse engine, in NumPy.

From a dense float MLP (bias-free ReLU layers, trained here by :func:`train_mlp`) to encoded
per-PE images:

1. :func:`prune_mask` — magnitude pruning to a target density (the largest ``|w|`` are kept);
   :func:`train_mlp` with ``masks`` retrains the survivors (iterated in :func:`compress_mlp`).
2. :func:`share_weights` — k-means weight sharing with ``2**index_bits`` codebook entries,
   *linear* initialisation between the smallest and largest surviving weight, index 0 reserved
   for the pruned (zero) weights; :func:`train_mlp` with ``shared`` fine-tunes the centroids
   (each centroid's gradient is the sum of its weights' gradients).
3. :func:`integer_layers` — fixed point: integer codebooks of ``weight_bits`` and, per layer, the
   requantizing shift chosen on calibration data so the outputs fit ``act_bits``; the results are
   :class:`FixedPointLayer` objects holding the encoded images
   (:func:`lowbit.sw_reference.sparse.encode_sparse`).

Layers are bias-free, so a ReLU network is positively homogeneous: rescaling a layer's weights
rescales its outputs and does not change the predicted class. The fixed-point version only has
to choose scales that avoid rounding loss and saturation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..sw_reference.sparse import SparseImage, encode_sparse, sparse_matvec

__all__ = [
    "FixedPointLayer",
    "train_mlp",
    "mlp_forward",
    "accuracy",
    "prune_mask",
    "share_weights",
    "SharedLayer",
    "compress_mlp",
    "CompressedMLP",
    "integer_layers",
    "integer_forward",
    "compression_ratio",
]

log = logging.getLogger(__name__)


def _check_weights(weights) -> list[np.ndarray]:
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    for k, w in enumerate(ws):
        if w.ndim != 2:
            raise ValueError(f"weights[{k}] must be a 2-D (out, in) matrix, not shape {w.shape}")
        if k and w.shape[1] != ws[k - 1].shape[0]:
            raise ValueError(
                f"weights[{k}] takes {w.shape[1]} inputs but weights[{k - 1}] gives "
                f"{ws[k - 1].shape[0]}"
            )
    return ws


def mlp_forward(weights, x) -> np.ndarray:
    """Logits of the bias-free ReLU MLP ``weights`` (list of ``(out, in)``) on float inputs
    ``x``."""
    h = np.asarray(x, dtype=np.float64)
    for k, w in enumerate(weights):
        h = h @ np.asarray(w).T
        if k < len(weights) - 1:
            h = np.maximum(h, 0)
    return h


def accuracy(logits, y) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(y)))


@dataclass(frozen=True, eq=False)
class SharedLayer:
    """A weight-shared layer: ``indices`` (``(out, in)``, 0 = pruned) into float ``centroids``
    (entry 0 is 0)."""

    indices: np.ndarray
    centroids: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        return self.centroids[self.indices]

    @property
    def density(self) -> float:
        return float(np.count_nonzero(self.indices)) / self.indices.size


def train_mlp(
    x,
    y,
    *,
    hidden=(300, 100),
    classes: int | None = None,
    epochs: int = 20,
    lr: float = 1e-3,
    batch: int = 64,
    seed: int = 0,
    weights=None,
    masks=None,
    shared: list[SharedLayer] | None = None,
    weight_decay: float = 1e-5,
):
    """Train a bias-free ReLU MLP with Adam on cross-entropy; returns the weights (or ``shared``
    layers).

    ``x`` are float inputs ``(B, features)``. Start from ``weights`` when given (else He-initialised
    ``features -> hidden -> classes``). With ``masks`` (one 0/1 array per layer) pruned weights stay
    zero. With ``shared`` only the centroids are trained (entry 0 stays 0) and the updated
    :class:`SharedLayer` list is returned.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(
            f"x must be (B, features) with one label each, not {x.shape} and {y.shape}"
        )
    rng = np.random.default_rng(seed)
    classes = int(y.max()) + 1 if classes is None else classes
    if shared is not None:
        params = [layer.centroids.astype(np.float64).copy() for layer in shared]
        weights = [layer.weights for layer in shared]
    elif weights is None:
        sizes = [x.shape[1], *hidden, classes]
        weights = [rng.normal(0, np.sqrt(2.0 / a), (b, a)) for a, b in zip(sizes, sizes[1:])]
        params = weights
    else:
        weights = _check_weights(weights)
        params = [w.copy() for w in weights]
    if masks is not None and shared is None:
        params = [p * m for p, m in zip(params, masks)]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            sel = order[i : i + batch]
            ws = (
                [p[layer.indices] for p, layer in zip(params, shared)]
                if shared is not None
                else params
            )
            grads = _backprop(ws, x[sel], y[sel])
            if shared is not None:
                grads = [
                    np.bincount(layer.indices.ravel(), weights=g.ravel(), minlength=len(p))
                    for g, p, layer in zip(grads, params, shared)
                ]
                for g in grads:
                    g[0] = 0.0
            else:
                grads = [g + weight_decay * p for g, p in zip(grads, params)]
                if masks is not None:
                    grads = [g * mk for g, mk in zip(grads, masks)]
            step += 1
            for k, g in enumerate(grads):
                m1[k] = 0.9 * m1[k] + 0.1 * g
                m2[k] = 0.999 * m2[k] + 0.001 * g * g
                upd = lr * (m1[k] / (1 - 0.9**step)) / (np.sqrt(m2[k] / (1 - 0.999**step)) + 1e-8)
                params[k] = params[k] - upd
                if masks is not None and shared is None:
                    params[k] *= masks[k]
        log.debug("epoch %d/%d done", epoch + 1, epochs)
    if shared is not None:
        out = []
        for p, layer in zip(params, shared):
            p = p.copy()
            p[0] = 0.0
            out.append(SharedLayer(layer.indices, p))
        return out
    return params


def _backprop(ws, x, y):
    acts = [x]
    for k, w in enumerate(ws):
        h = acts[-1] @ w.T
        acts.append(np.maximum(h, 0) if k < len(ws) - 1 else h)
    logits = acts[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    delta = p / len(y)
    grads = [None] * len(ws)
    for k in reversed(range(len(ws))):
        grads[k] = delta.T @ acts[k]
        if k:
            delta = (delta @ ws[k]) * (acts[k] > 0)
    return grads


def prune_mask(w, density: float) -> np.ndarray:
    """0/1 mask keeping the ``round(density * w.size)`` largest-magnitude weights of ``w``."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must lie in (0, 1], not {density!r}")
    w = np.asarray(w)
    keep = max(1, int(round(density * w.size)))
    order = np.argsort(-np.abs(w).ravel(), kind="stable")
    mask = np.zeros(w.size, dtype=np.float64)
    mask[order[:keep]] = 1.0
    return mask.reshape(w.shape)


def share_weights(w, *, index_bits: int = 4, iters: int = 30) -> SharedLayer:
    """k-means weight sharing of the non-zero weights of ``w``: ``2**index_bits - 1`` centroids,
    linearly initialised over ``[min, max]``; zeros map to the reserved index 0."""
    w = np.asarray(w, dtype=np.float64)
    k = (1 << index_bits) - 1
    nz = w != 0
    vals = w[nz]
    idx = np.zeros(w.shape, dtype=np.int64)
    if vals.size == 0:
        return SharedLayer(idx, np.zeros(k + 1))
    cent = np.linspace(vals.min(), vals.max(), k)
    for _ in range(iters):
        assign = np.argmin(np.abs(vals[:, None] - cent[None, :]), axis=1)
        sums = np.bincount(assign, weights=vals, minlength=k)
        counts = np.bincount(assign, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), cent)
        if np.allclose(new, cent):
            break
        cent = new
    assign = np.argmin(np.abs(vals[:, None] - cent[None, :]), axis=1)
    idx[nz] = assign + 1
    return SharedLayer(idx, np.concatenate([[0.0], cent]))


@dataclass(frozen=True, eq=False)
class CompressedMLP:
    dense: list[np.ndarray]  # the dense float twin
    pruned: list[np.ndarray]  # pruned and retrained float weights
    shared: list[SharedLayer]  # weight-shared layers after centroid fine-tuning

    @property
    def density(self) -> float:
        nnz = sum(np.count_nonzero(layer.indices) for layer in self.shared)
        return nnz / sum(layer.indices.size for layer in self.shared)


def compress_mlp(
    x,
    y,
    *,
    hidden=(300, 100),
    densities=(0.08, 0.09, 0.26),
    epochs: int = 20,
    retrain_epochs: int = 8,
    steps: int = 3,
    finetune_epochs: int = 4,
    index_bits: int = 4,
    seed: int = 0,
    lr: float = 1e-3,
) -> CompressedMLP:
    """Train the dense twin, prune iteratively (``steps`` geometric steps to ``densities``,
    retraining after each), share weights and fine-tune the centroids."""
    dense = train_mlp(x, y, hidden=hidden, epochs=epochs, seed=seed, lr=lr)
    if len(densities) != len(dense):
        raise ValueError(
            f"densities must give one density per layer ({len(dense)}), not {len(densities)}"
        )
    w = [d.copy() for d in dense]
    for s in range(1, steps + 1):
        masks = [prune_mask(wi, di ** (s / steps)) for wi, di in zip(w, densities)]
        w = train_mlp(
            x,
            y,
            weights=[wi * mk for wi, mk in zip(w, masks)],
            masks=masks,
            epochs=retrain_epochs,
            seed=seed + s,
            lr=lr / 2,
            weight_decay=0.0,
        )
        log.info(
            "pruning step %d/%d: densities %s", s, steps, [round(float(m.mean()), 4) for m in masks]
        )
    shared = [share_weights(wi, index_bits=index_bits) for wi in w]
    shared = train_mlp(x, y, shared=shared, epochs=finetune_epochs, seed=seed + 99, lr=lr / 4)
    return CompressedMLP(dense, w, shared)


@dataclass(frozen=True, eq=False)
class FixedPointLayer:
    """One weight-shared layer in fixed point: the encoded image (integer codebook), the output
    shift, ReLU or not, and the bit widths. :meth:`reference` is ``sw_reference``'s sparse product;
    :meth:`lowbit.hw.sparse.engine_spec.SparseEngineSpec.for_layer` puts it on the engine."""

    image: SparseImage
    shift: int
    relu: bool
    weight_bits: int
    act_bits: int

    @property
    def rows(self) -> int:
        return self.image.rows

    @property
    def cols(self) -> int:
        return self.image.cols

    @property
    def out_bits(self) -> int:
        return self.act_bits

    def reference(self, x) -> np.ndarray:
        return sparse_matvec(
            self.image, x, shift=self.shift, out_bits=self.out_bits, relu=self.relu
        )


def integer_layers(
    shared: list[SharedLayer],
    x_calib,
    *,
    pes: int,
    weight_bits: int = 8,
    act_bits: int = 16,
    headroom_bits: int = 1,
) -> list[FixedPointLayer]:
    """Fixed-point layers (holding encoded images for ``pes`` PEs) of the weight-shared layers.

    Codebooks are ``round(c * (2**(weight_bits-1) - 1) / max|c|)``. Each layer's shift is the
    smallest that keeps the largest accumulator over the integer calibration inputs ``x_calib``
    below ``2**(act_bits - 1 - headroom_bits)`` after the shift. The last layer has no ReLU.
    """

    layers = []
    a = np.asarray(x_calib, dtype=np.int64)
    qmax = (1 << (weight_bits - 1)) - 1
    for k, layer in enumerate(shared):
        c = layer.centroids
        scale = qmax / max(np.abs(c).max(), 1e-30)
        cb = np.round(c * scale).astype(np.int64)
        cb[0] = 0
        if np.any(cb[1:] == 0):
            log.warning(
                "layer %d: %d non-zero centroids round to 0 at weight_bits=%d",
                k,
                int(np.sum(cb[1:] == 0)),
                weight_bits,
            )
        image = encode_sparse(layer.indices, cb, pes)
        acc = a @ cb[layer.indices].T
        peak = int(np.abs(acc).max()) if acc.size else 0
        shift = 0
        while (peak + (1 << shift >> 1)) >> shift >= 1 << (act_bits - 1 - headroom_bits):
            shift += 1
        fixed = FixedPointLayer(image, shift, k < len(shared) - 1, weight_bits, act_bits)
        layers.append(fixed)
        a = fixed.reference(a)
    return layers


def integer_forward(layers, x) -> list[np.ndarray]:
    """Outputs of every integer layer (``sw_reference``) on integer inputs ``x``; the last are the
    logits."""
    outs, a = [], np.asarray(x, dtype=np.int64)
    for layer in layers:
        a = sparse_matvec(
            layer.image, a, shift=layer.shift, out_bits=layer.out_bits, relu=layer.relu
        )
        outs.append(a)
    return outs


def compression_ratio(
    images: list[SparseImage],
    *,
    float_bits: int = 32,
    pointer_bits: int = 16,
    codebook_bits: int = 32,
) -> float:
    """Dense float storage over encoded storage (entries, column pointers and codebooks)."""
    dense = sum(im.rows * im.cols for im in images) * float_bits
    enc = sum(
        im.encoded_bits(pointer_bits=pointer_bits, codebook_bits=codebook_bits) for im in images
    )
    return dense / enc
