"""Integer reference operators: XNOR-popcount products, integer x bipolar products,
MultiThreshold, binary max-pool, and the label select.

Every function takes and returns integer arrays; nothing here rounds or uses floating point.
Semantics follow ``ARITHMETIC.md`` sections 1, 2 and 5.
"""

from __future__ import annotations

import numpy as np

from .bits import _check_bits, pack_bits, popcount

__all__ = [
    "xnor_popcount",
    "bipolar_matmul",
    "int_bipolar_matmul",
    "int_matmul",
    "multithreshold",
    "binary_maxpool",
    "sliding_window",
    "maxpool2d",
    "sum_pool",
    "argmax_lowest",
]


def _check_int(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biu":
        raise TypeError(f"{name} must be an integer array, not {x.dtype}")
    return x.astype(np.int64)


def _abs_max(x: np.ndarray) -> int:
    """The largest magnitude in ``x``, as a Python integer (0 when empty)."""
    return max(abs(int(x.min())), abs(int(x.max()))) if x.size else 0


def xnor_popcount(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """Popcount of ``XNOR(x, w)`` for every pair of rows: the number of matching bits.

    ``x_bits`` has shape ``(B, N)``, ``w_bits`` ``(M, N)``; the result ``(B, M)`` is in ``[0, N]``.
    The words are zero-padded, so matches are counted as ``N - popcount(XOR)``: the XOR form is
    unchanged by padding, while the XNOR form would count the pad bits as matches.
    """
    xb = _check_bits(x_bits, "x_bits")
    wb = _check_bits(w_bits, "w_bits")
    if xb.ndim != 2 or wb.ndim != 2 or xb.shape[1] != wb.shape[1]:
        raise ValueError(
            f"x_bits (B, N) and w_bits (M, N) must agree on N, got {xb.shape} and {wb.shape}"
        )
    n = xb.shape[1]
    xp = pack_bits(xb)
    wp = pack_bits(wb)
    mismatches = popcount(xp[:, None, :] ^ wp[None, :, :]).sum(axis=-1)
    return n - mismatches


def bipolar_matmul(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """Bipolar dot products ``x . w = 2 * popcount(XNOR(x, w)) - N`` for bit-encoded operands."""
    n = np.asarray(x_bits).shape[-1]
    return 2 * xnor_popcount(x_bits, w_bits) - n


def int_bipolar_matmul(x: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """Integer inputs times bipolar weights: ``sum_j x[b, j] * (+1 if w[m, j] else -1)``.

    This is the first layer of a binary network: an add/subtract accumulator, no XNOR.
    """
    xi = _check_int(x, "x")
    wb = _check_bits(w_bits, "w_bits").astype(np.int64)
    if xi.ndim != 2 or wb.ndim != 2 or xi.shape[1] != wb.shape[1]:
        raise ValueError(
            f"x (B, N) and w_bits (M, N) must agree on N, got {xi.shape} and {wb.shape}"
        )
    return xi @ (2 * wb - 1).T


def int_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact integer dot products ``sum_j x[b, j] * w[m, j]`` (int64; operands are signed values).

    Serves ternary, power-of-two and multi-bit weights alike: their codes are stored as the exact
    integers they stand for (``ARITHMETIC.md`` sections 3 to 5).
    """
    xi = _check_int(x, "x")
    wi = _check_int(w, "w")
    if xi.ndim != 2 or wi.ndim != 2 or xi.shape[1] != wi.shape[1]:
        raise ValueError(f"x (B, N) and w (M, N) must agree on N, got {xi.shape} and {wi.shape}")
    # in Python integers: the bound itself (and abs(-2^63)) must not wrap around in int64
    bound = _abs_max(xi) * _abs_max(wi) * max(1, xi.shape[1])
    if bound >= 2**62:
        raise OverflowError(
            f"dot products of length {xi.shape[1]} may overflow int64 (bound {bound})"
        )
    return xi @ wi.T


def sliding_window(
    x: np.ndarray, kernel: int, stride: int = 1, pad: int = 0, pad_value: int = 0
) -> np.ndarray:
    """Convolution windows (im2col) of ``x`` ``(B, H, W, C)``: ``(B, OH, OW, K * K * C)``.

    Each window is flattened in ``(ky, kx, c)`` order, the order in which the sliding-window
    generator streams it. ``pad`` rows and columns of ``pad_value`` surround the image;
    ``OH = (H + 2 pad - K) // stride + 1``.
    """
    xi = _check_int(x, "x")
    if xi.ndim != 4:
        raise ValueError(f"x must have shape (B, H, W, C), not {xi.shape}")
    for name, v, lo in (("kernel", kernel, 1), ("stride", stride, 1), ("pad", pad, 0)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
    if pad:
        xi = np.pad(xi, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    b, h, w, c = xi.shape
    if kernel > h or kernel > w:
        raise ValueError(f"kernel ({kernel}) exceeds the padded image ({h} x {w})")
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    cols = [
        xi[:, ky : ky + stride * (oh - 1) + 1 : stride, kx : kx + stride * (ow - 1) + 1 : stride, :]
        for ky in range(kernel)
        for kx in range(kernel)
    ]
    return np.concatenate(cols, axis=-1)


def maxpool2d(x: np.ndarray, kernel: int, stride: int | None = None) -> np.ndarray:
    """Max-pool of ``x`` ``(B, H, W, C)`` over ``kernel x kernel`` windows (no padding).

    On bits (bipolar activations) the maximum is the OR. ``OH = (H - K) // stride + 1``.
    """
    xi = _check_int(x, "x")
    stride = kernel if stride is None else stride
    if xi.ndim != 4:
        raise ValueError(f"x must have shape (B, H, W, C), not {xi.shape}")
    win = sliding_window(xi, kernel, stride)
    b, oh, ow, _ = win.shape
    return win.reshape(b, oh, ow, kernel * kernel, xi.shape[-1]).max(axis=3)


def sum_pool(x: np.ndarray) -> np.ndarray:
    """Global accumulate-pool: the exact sum over all pixels of ``x`` ``(B, H, W, C)``,
    ``(B, C)``."""
    xi = _check_int(x, "x")
    if xi.ndim != 4:
        raise ValueError(f"x must have shape (B, H, W, C), not {xi.shape}")
    return xi.sum(axis=(1, 2))


def multithreshold(acc: np.ndarray, thresholds: np.ndarray, out_bias: int = 0) -> np.ndarray:
    """MultiThreshold: ``out[b, c] = out_bias + sum_i [acc[b, c] >= T[c, i]]``.

    ``thresholds`` has shape ``(C, k)`` (one row per channel) or ``(1, k)`` (shared).
    """
    a = _check_int(acc, "acc")
    t = _check_int(thresholds, "thresholds")
    if t.ndim != 2 or t.shape[0] not in (1, a.shape[-1]):
        raise ValueError(
            f"thresholds must have shape (C, k) or (1, k) with C = {a.shape[-1]}, not {t.shape}"
        )
    return out_bias + (a[..., None] >= t).sum(axis=-1)


def binary_maxpool(bits: np.ndarray, kernel: int) -> np.ndarray:
    """Max-pool of bipolar activations on bits: the OR over each ``kernel x kernel`` window.

    ``bits`` is ``(B, H, W, C)`` with ``H`` and ``W`` multiples of ``kernel`` (stride = kernel).
    """
    b = _check_bits(bits, "bits").astype(np.uint8)
    if b.ndim != 4:
        raise ValueError(f"bits must have shape (B, H, W, C), not {b.shape}")
    n, h, w, c = b.shape
    if kernel < 1 or h % kernel or w % kernel:
        raise ValueError(f"kernel ({kernel}) must divide H ({h}) and W ({w})")
    win = b.reshape(n, h // kernel, kernel, w // kernel, kernel, c)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(win, axis=4), axis=2)


def argmax_lowest(scores: np.ndarray) -> np.ndarray:
    """Class decision: index of the largest integer score, ties broken towards the lowest index."""
    s = _check_int(scores, "scores")
    return np.argmax(s, axis=-1).astype(np.int64)
