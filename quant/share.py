"""Weight sharing (Deep Compression, Han et al. 2016): per-layer k-means, codebook and indices.

* k-means on a layer's non-zero weights with ``K - 1`` centroids, linearly initialised between the
  smallest and largest weight (the initialisation Han et al. found best); index 0 is reserved for
  the value zero (pruned weights keep it), so the codebook has ``K`` entries.
* Lloyd iterations: assignment to the nearest centroid (ties to the lower index), update to the
  mean of the members (an empty cluster keeps its centroid), until no assignment changes.
* Centroid fine-tuning: the gradient of a centroid is the sum of its members' gradients
  (:func:`centroid_gradient`).
* Export: per layer, the float codebook, its integer codes and scale, and the ``uint8`` indices:
  the input format of the sparse engine (:func:`export_codebooks`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..sw_reference.sparse import encode_sparse
from .train.net import shared_codebook

__all__ = [
    "kmeans_1d",
    "share_layer",
    "centroid_gradient",
    "apply_sharing",
    "export_codebooks",
    "sparse_images",
]


def kmeans_1d(values: np.ndarray, k: int, *, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """1-D k-means with linear initialisation: ``(centroids (k,), assignment)``; deterministic."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    if v.size == 0:
        return np.zeros(k), np.zeros(0, dtype=np.int64)
    c = np.linspace(v.min(), v.max(), k)
    assign = None
    for _ in range(max_iter):
        new = np.abs(v[:, None] - c[None, :]).argmin(
            axis=1
        )  # first minimum: ties to the lower index
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        sums = np.bincount(assign, weights=v, minlength=k)
        counts = np.bincount(assign, minlength=k)
        c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
    if assign is None:  # no iteration ran
        raise ValueError(f"max_iter must be a positive integer, not {max_iter!r}")
    return c, assign


def share_layer(w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Codebook ``(k,)`` (entry 0 is 0) and indices ``(w.shape)`` for one layer; zeros keep index
    0."""
    w = np.asarray(w, dtype=np.float64)
    if k < 2:
        raise ValueError(f"weight sharing needs k >= 2 (index 0 is reserved for zero), not {k!r}")
    nz = w != 0
    cent, assign = kmeans_1d(w[nz], k - 1)
    idx = np.zeros(w.shape, dtype=np.int64)
    idx[nz] = assign + 1
    return np.concatenate([[0.0], cent]), idx


def centroid_gradient(grad_w: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Gradient of each codebook entry: the sum of its members' weight gradients (entry 0 fixed at
    0)."""
    g = np.bincount(np.asarray(idx).ravel(), weights=np.asarray(grad_w).ravel(), minlength=k)
    g[0] = 0.0
    return g


def apply_sharing(net, k: int, *, bits: int = 8) -> None:
    """Replace every layer's weights of ``net`` by ``k`` shared values (in place).

    Runs k-means on the current (masked) float weights; afterwards the layer's weights are
    ``codebook_codes[idx] * scale`` with the codebook quantized to ``INTbits`` (see
    :func:`~lowbit.quant.train.net.shared_codebook`); ``params['cb{i}']`` holds the trainable
    centroids.
    """
    for i in range(net.n_layers):
        w = net.params[f"W{i}"]
        if f"mask{i}" in net.state:
            w = w * net.state[f"mask{i}"]
        cb, idx = share_layer(w, k)
        net.params[f"cb{i}"] = cb
        net.state[f"share_idx{i}"] = idx
        net.state[f"share_bits{i}"] = bits


def export_codebooks(net, path: str | os.PathLike) -> Path:
    """Write every shared layer's codebook and indices to an ``.npz`` (atomically).

    Entries per layer ``i``: ``codebook_{i}`` (float64 centroids, entry 0 = 0), ``codes_{i}`` (int64
    integer codebook), ``scale_{i}`` (its scale), ``indices_{i}`` (``uint8``, shape ``(OC, F)``).
    """

    arrays = {}
    for i in range(net.n_layers):
        if f"share_idx{i}" not in net.state:
            continue
        codes, scale = shared_codebook(net.params[f"cb{i}"], net.state[f"share_bits{i}"])
        arrays[f"codebook_{i}"] = net.params[f"cb{i}"]
        arrays[f"codes_{i}"] = codes
        arrays[f"scale_{i}"] = np.array(scale)
        arrays[f"indices_{i}"] = net.state[f"share_idx{i}"].astype(np.uint8)
    return atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def sparse_images(net, pes: int, *, index_bits: int = 4, zero_bits: int = 4) -> dict:
    """EIE images (:func:`~lowbit.sw_reference.sparse.encode_sparse`) of every shared layer of
    ``net``.

    The integer codebook is padded with zeros to ``2**index_bits`` entries (index 0 stays the
    zero). Returns ``{layer index: SparseImage}``; ``dense_weights(image)`` equals the layer's
    integer codes.
    """

    out = {}
    for i in range(net.n_layers):
        if f"share_idx{i}" not in net.state:
            continue
        codes, _ = shared_codebook(net.params[f"cb{i}"], net.state[f"share_bits{i}"])
        size = 1 << index_bits
        if len(codes) > size:
            raise ValueError(
                f"layer {i}: {len(codes)} shared values need more than index_bits={index_bits}"
            )
        cb = np.zeros(size, dtype=np.int64)
        cb[: len(codes)] = codes
        out[i] = encode_sparse(
            net.state[f"share_idx{i}"], cb, pes, index_bits=index_bits, zero_bits=zero_bits
        )
    return out
