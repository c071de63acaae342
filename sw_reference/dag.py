"""Integer reference operators beyond chains (issue 19): depthwise convolution, 1-D windows and
pooling, global average pooling with exact rounding, and the joins (``Add``, ``Concat``).

Every function takes and returns integer arrays (exact rationals, :class:`fractions.Fraction`, for
the scale arithmetic); nothing rounds in floating point.

Depthwise convolution
---------------------
A convolution with ``groups == channels`` (one filter per channel) reads the same windows as a dense
one: :func:`~lowbit.sw_reference.ops.sliding_window` gives ``(..., K * K * C)`` in ``(ky, kx, c)``
order, so tap ``j`` of channel ``c`` is column ``j * C + c``. Output channel ``c`` is the dot
product of its ``K * K`` taps with row ``c`` of the weights ``(C, K * K)``, with the MVTU's MAC
kinds: bits with XNOR-popcount (:func:`depthwise_xnor`, the count of agreeing bits in
``[0, K * K]``), or values times ternary, power-of-two or ``k``-bit weights (:func:`depthwise_int`,
an exact integer sum; the weights' codes are the integers they stand for).

Global average pooling
----------------------
Brevitas' ``TruncAvgPool2d`` exports as ``AveragePool`` and a QONNX ``Trunc``: on codes the pool
sums ``S = sum of x over N pixels``, ``Trunc``'s input scale is the pool's ``scale / N`` so its
``round(x / scale)`` is ``S`` exactly, and its output is ``rounding(clip(S / 2^shift, lo, hi))``
(:func:`trunc_avg_pool`). Any such non-decreasing function of the integer sum is a threshold
function of it: ``out = lo + #{i : S >= T[i]}`` with ``T[i]`` the least ``S`` reaching level
``lo + i + 1`` (:func:`monotone_thresholds`); an integer sum followed by thresholds is exact.

Add of two quantized tensors
----------------------------
Branch ``a`` has codes ``x_a`` of value ``s_a * x_a + o_a`` and branch ``b`` codes ``x_b`` of
value ``s_b * x_b + o_b`` (per channel; ``s_a, s_b`` exact rationals, as every float32 scale is).
Write the ratio in lowest terms, ``s_a / s_b = p / q`` (``q > 0``), and let
``u = s_a / p = s_b / q``. Then

    s_a * x_a + s_b * x_b = u * (p * x_a + q * x_b),

so the sum's value is ``u * acc + (o_a + o_b)`` with the *integer* accumulator
``acc = p * x_a + q * x_b`` (:func:`join_coefficients`). The requantizer after the sum (say
``ReLU`` and a ``Quant`` of scale ``s``) is a non-decreasing function of the value when ``u > 0``,
hence of ``acc``, so one set of integer thresholds on ``acc`` gives its codes exactly
(:func:`add_threshold`). Equal scales give ``p = q = 1``; scales a power of two apart give
``p, q`` in ``{1, 2^k}``; two unrelated float32 scales give ``p, q < 2^(24 + e)`` (their
mantissas, shifted by the difference ``e`` of their exponents), exact in int64 all the same.

Those ``p, q`` are exact but can be wide. The codes of the two branches take few values, so the
join can usually be computed with much smaller coefficients: :func:`simplest_join` finds, per
channel, the smallest ``(p', q')`` and thresholds ``T'`` giving the same output for *every* pair of
input values. Each pair of points ``u`` (output ``>= i``) and ``v`` (output ``< i``) demands
``p' (a_u - a_v) + q' (b_u - b_v) > 0``, which bounds the ratio ``r = p' / q'`` on one side; the
bounds leave an open interval around ``p / q`` and the simplest fraction in it (continued
fractions) has the smallest numerator and denominator; ``T'_i`` is the least ``p' a + q' b`` over
the points at level ``>= i``.

``Concat`` along channels (:func:`concat`) joins codes of one type; the scales stay per channel.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

from .bits import _check_bits
from .ops import _check_int, multithreshold

__all__ = [
    "depthwise_xnor",
    "depthwise_int",
    "sliding_window_1d",
    "maxpool1d",
    "trunc_avg_pool",
    "monotone_thresholds",
    "join_coefficients",
    "add_threshold",
    "simplest_join",
    "concat",
]


def _taps(x: np.ndarray, kk: int, c: int) -> np.ndarray:
    """Windows ``(..., K * K * C)`` as ``(..., C, K * K)``: tap ``j`` of channel ``c`` is column
    ``j * C + c``."""
    if x.shape[-1] != kk * c:
        raise ValueError(
            f"windows must have K * K * C = {kk} * {c} = {kk * c} values, not {x.shape[-1]}"
        )
    return np.swapaxes(x.reshape(x.shape[:-1] + (kk, c)), -1, -2)


def depthwise_xnor(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """Depthwise XNOR-popcount: for windows of bits ``(..., K * K * C)`` and weight bits
    ``(C, K * K)``, the number of agreeing bits of each channel's taps, ``(..., C)`` in
    ``[0, K * K]`` (the bipolar dot product is ``2 * acc - K * K``)."""
    xb = _check_bits(x_bits, "x_bits").astype(np.int64)
    wb = _check_bits(w_bits, "w_bits").astype(np.int64)
    if wb.ndim != 2:
        raise ValueError(f"w_bits must be (C, K * K), not {wb.shape}")
    c, kk = wb.shape
    taps = _taps(xb, kk, c)
    return (taps == wb).sum(axis=-1)


def depthwise_int(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Depthwise integer dot products: for windows of values ``(..., K * K * C)`` and weight values
    ``(C, K * K)`` (ternary, power-of-two or ``k``-bit, as the integers they stand for),
    ``acc[..., c] = sum_j x[..., j * C + c] * w[c, j]``, ``(..., C)`` in int64."""
    xi = _check_int(x, "x")
    wi = _check_int(w, "w")
    if wi.ndim != 2:
        raise ValueError(f"w must be (C, K * K), not {wi.shape}")
    c, kk = wi.shape
    return (_taps(xi, kk, c) * wi).sum(axis=-1)


def sliding_window_1d(
    x: np.ndarray, kernel: int, stride: int = 1, pad: int = 0, pad_value: int = 0
) -> np.ndarray:
    """1-D convolution windows of ``x`` ``(B, L, C)``: ``(B, OL, K * C)``, each window flattened in
    ``(k, c)`` order; ``pad`` positions of ``pad_value`` at both ends, ``OL = (L + 2 pad - K) //
    stride + 1``. A 1-D convolution is these windows times a ``(OC, K * C)`` weight matrix."""
    xi = _check_int(x, "x")
    if xi.ndim != 3:
        raise ValueError(f"x must have shape (B, L, C), not {xi.shape}")
    for name, v, lo in (("kernel", kernel, 1), ("stride", stride, 1), ("pad", pad, 0)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
    if pad:
        xi = np.pad(xi, ((0, 0), (pad, pad), (0, 0)), constant_values=pad_value)
    length = xi.shape[1]
    if kernel > length:
        raise ValueError(f"kernel ({kernel}) exceeds the padded length ({length})")
    ol = (length - kernel) // stride + 1
    cols = [xi[:, k : k + stride * (ol - 1) + 1 : stride, :] for k in range(kernel)]
    return np.concatenate(cols, axis=-1)


def maxpool1d(x: np.ndarray, kernel: int, stride: int | None = None) -> np.ndarray:
    """1-D max-pool of ``x`` ``(B, L, C)`` over windows of ``kernel`` (stride ``kernel`` by
    default, no padding): ``(B, OL, C)``; on bits the maximum is the OR."""
    xi = _check_int(x, "x")
    stride = kernel if stride is None else stride
    win = sliding_window_1d(xi, kernel, stride)
    b, ol, _ = win.shape
    return win.reshape(b, ol, kernel, xi.shape[-1]).max(axis=2)


_ROUNDING = ("FLOOR", "CEIL", "ROUND", "ROUND_TO_ZERO")


def _divide(num: np.ndarray, den: int, mode: str) -> np.ndarray:
    """``num / den`` (``den > 0``) rounded by ``mode``, exactly on integers (``ROUND`` is half to
    even, as numpy's and qonnx's ``round``)."""
    q, r = np.divmod(num, den)  # floor division: 0 <= r < den
    if mode == "FLOOR":
        return q
    if mode == "CEIL":
        return q + (r > 0)
    if mode == "ROUND_TO_ZERO":
        return q + ((r > 0) & (num < 0))
    twice = 2 * r
    return q + ((twice > den) | ((twice == den) & (q % 2 == 1)))


def trunc_avg_pool(
    x: np.ndarray, shift: int, lo: int, hi: int, rounding: str = "FLOOR"
) -> np.ndarray:
    """Global average pool with exact rounding, as Brevitas' ``TruncAvgPool2d`` computes it on codes
    (``AveragePool`` then QONNX ``Trunc``): ``rounding(clip(S / 2^shift, lo, hi))`` with ``S`` the
    sum of ``x`` ``(B, H, W, C)`` over its pixels; ``(B, C)``.

    ``rounding`` is ``FLOOR``, ``CEIL``, ``ROUND`` (half to even) or ``ROUND_TO_ZERO``. Clipping
    before rounding equals clipping after it: ``lo`` and ``hi`` are integers.
    """
    xi = _check_int(x, "x")
    if xi.ndim != 4:
        raise ValueError(f"x must have shape (B, H, W, C), not {xi.shape}")
    if rounding not in _ROUNDING:
        raise ValueError(f"rounding must be one of {', '.join(_ROUNDING)}, not {rounding!r}")
    if not isinstance(shift, (int, np.integer)) or shift < 0:
        raise ValueError(f"shift must be an integer >= 0, not {shift!r}")
    s = xi.sum(axis=(1, 2))
    return np.clip(_divide(s, 1 << int(shift), rounding), lo, hi)


def monotone_thresholds(
    f: Callable[[int], int], acc_lo: int, acc_hi: int, out_lo: int, levels: int
) -> np.ndarray:
    """The thresholds of a non-decreasing integer function ``f`` on ``[acc_lo, acc_hi]`` whose
    values lie in ``[out_lo, out_lo + levels]``: ``T[i]`` is the least ``acc`` with
    ``f(acc) >= out_lo + i + 1`` (``acc_hi + 1`` when none), so that
    ``f(acc) = out_lo + #{i : acc >= T[i]}`` (:func:`~lowbit.sw_reference.ops.multithreshold` with
    ``out_bias = out_lo``) on the whole range. Binary search: ``levels * log2(range)`` calls of
    ``f``, whatever the range.
    """
    t = np.empty(levels, dtype=np.int64)
    for i in range(levels):
        target = out_lo + i + 1
        lo, hi = acc_lo, acc_hi + 1  # f(hi) counts as reaching every level
        while lo < hi:
            mid = (lo + hi) // 2
            if f(mid) >= target:
                hi = mid
            else:
                lo = mid + 1
        t[i] = lo
    return t


def join_coefficients(scale_a, scale_b) -> tuple[int, int, Fraction]:
    """``(p, q, u)`` with ``scale_a * x_a + scale_b * x_b = u * (p * x_a + q * x_b)``: ``p / q`` is
    ``scale_a / scale_b`` in lowest terms (``q > 0``) and ``u = scale_a / p``. Scales are exact
    (``Fraction``, ``int`` or a float taken exactly); neither may be 0."""
    sa, sb = Fraction(scale_a), Fraction(scale_b)
    if sa == 0 or sb == 0:
        raise ValueError(f"join scales must be non-zero, not {scale_a!r} and {scale_b!r}")
    r = sa / sb
    p, q = r.numerator, r.denominator
    return p, q, sa / p


def add_threshold(
    a: np.ndarray,
    b: np.ndarray,
    wa: np.ndarray,
    wb: np.ndarray,
    thresholds: np.ndarray | None,
    out_bias: int = 0,
) -> np.ndarray:
    """The elementwise join: ``acc = wa[c] * a + wb[c] * b`` on the values of two tensors of the
    same shape ``(..., C)`` (``wa``, ``wb`` integers per channel, :func:`join_coefficients`), then
    ``out_bias + #{i : acc >= T[c, i]}`` (``thresholds`` ``(C, k)`` or ``(1, k)``); the
    accumulator itself when ``thresholds`` is ``None``."""
    ai, bi = _check_int(a, "a"), _check_int(b, "b")
    if ai.shape != bi.shape:
        raise ValueError(f"a and b must have one shape, not {ai.shape} and {bi.shape}")
    acc = _check_int(wa, "wa") * ai + _check_int(wb, "wb") * bi
    return acc if thresholds is None else multithreshold(acc, thresholds, out_bias)


def _simplest_between(lo: Fraction, hi: Fraction | None) -> Fraction:
    """The fraction of smallest numerator and denominator strictly between ``lo >= 0`` and ``hi``
    (``None``: no upper bound)."""
    fl = lo.numerator // lo.denominator
    if hi is None or fl + 1 < hi:
        return Fraction(fl + 1)
    # lo and hi share the integer part fl (hi <= fl + 1): x = fl + 1 / y
    y = _simplest_between(1 / (hi - fl), None if lo == fl else 1 / (lo - fl))
    return fl + 1 / y


def simplest_join(
    wa: np.ndarray,
    wb: np.ndarray,
    thresholds: np.ndarray,
    a_values: np.ndarray,
    b_values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smallest positive coefficients of an :func:`add_threshold` join with the same output on
    every pair of input values ``(a, b)`` in ``a_values x b_values`` (see the module docstring):
    ``(wa', wb', T')``, ``T'`` of shape ``(C, k)``. Channels whose ``wa`` or ``wb`` is not positive
    keep theirs."""
    wa, wb = _check_int(wa, "wa"), _check_int(wb, "wb")
    t = np.broadcast_to(_check_int(thresholds, "thresholds"), (wa.size, np.shape(thresholds)[1]))
    av, bv = np.meshgrid(_check_int(a_values, "a_values"), _check_int(b_values, "b_values"))
    av, bv = av.reshape(-1), bv.reshape(-1)
    out_a, out_b, out_t = wa.copy(), wb.copy(), t.copy()
    for c in range(wa.size):
        if wa[c] <= 0 or wb[c] <= 0:
            continue
        level = (wa[c] * av + wb[c] * bv)[:, None] >= t[c]  # (points, k)
        lo, hi = Fraction(0), None  # the open interval of ratios p' / q'
        for i in range(t.shape[1]):
            up, down = level[:, i], ~level[:, i]
            if not up.any() or not down.any():
                continue
            da = av[up][:, None] - av[down][None, :]
            db = bv[up][:, None] - bv[down][None, :]
            pos, neg = da > 0, da < 0  # r > -db / da, and r < db / -da
            if pos.any():
                j = np.argmax(np.where(pos, -db / np.where(pos, da, 1), -np.inf))
                lo = max(lo, Fraction(int(-db.flat[j]), int(da.flat[j])))
            if neg.any():
                j = np.argmin(np.where(neg, db / np.where(neg, -da, 1), np.inf))
                bound = Fraction(int(db.flat[j]), int(-da.flat[j]))
                hi = bound if hi is None else min(hi, bound)
        r = _simplest_between(lo, hi)
        p, q = r.numerator, r.denominator
        if max(p, q) >= max(wa[c], wb[c]):
            continue
        s = p * av + q * bv
        new_t = np.array(
            [s[level[:, i]].min() if level[:, i].any() else s.max() + 1 for i in range(t.shape[1])]
        )
        if not np.array_equal(s[:, None] >= new_t, level):  # not reached: the bounds are exact
            continue
        out_a[c], out_b[c], out_t[c] = p, q, new_t
    return out_a, out_b, out_t


def concat(*xs: np.ndarray) -> np.ndarray:
    """``Concat`` along the channels (last axis) of tensors of one shape but the last axis."""
    arrs = [_check_int(x, "x") for x in xs]
    if len(arrs) < 2 or len({a.shape[:-1] for a in arrs}) != 1:
        raise ValueError(
            f"concat needs two or more tensors of one shape but the last axis, not "
            f"{[a.shape for a in arrs]}"
        )
    return np.concatenate(arrs, axis=-1)
