"""Weight and activation quantizers of the zoo, each with its rounding rule written down.

Every weight quantizer returns a :class:`QuantizedWeights`: integer ``codes`` (the exact integers
the integer graph stores), a positive ``scale`` per output channel (row) and the graph
``dtype`` of the codes. The quantized weight is ``codes * scale[:, None]``. Scales never reach the
hardware: they fold into the next thresholds (``ARITHMETIC.md`` sections 2 to 4).

Rounding rules (each tested on hand-worked values in ``tests/test_quant_quantizers.py``):

* ``sign``: ``sign(0) = +1`` (``ARITHMETIC.md`` section 1).
* uniform symmetric (``int:B``): ``round_half_away(w / s)`` with ``s = max|w| / (2^(B-1) - 1)``.
* DoReFa weights: ``round_half_up`` of ``(tanh(w) / (2 max|tanh w|) + 1/2) * (2^k - 1)``.
* activations (DoReFa / uniform unsigned): ``floor(clip(x, 0, 1) * n + 1/2)``, ``n = 2^k - 1``
  (round half up, so each level boundary is a ``>=`` comparison: a MultiThreshold).
* LogQuant: rounding in the log domain, ``e = floor(log2|w| + 1/2)``, computed exactly from the
  binary exponent and mantissa; ``e > e_max`` clips to ``e_max``; ``e < e_min`` gives zero.
* INQ: the paper's rule, nearest level in the linear domain with ties towards the larger level.
* TWN: ``|w| > delta`` keeps a weight (strict), ``alpha`` = mean of the kept magnitudes.
* TTQ: ``|w| > delta``, ``delta = t max|w|``.
* stochastic rounding: ``floor(v + u)``, ``u`` uniform in ``[0, 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.datatypes import BIPOLAR, TERNARY, DataType

__all__ = [
    "QuantizedWeights",
    "round_half_away",
    "round_half_up",
    "sign",
    "binary",
    "binary_stochastic",
    "twn",
    "ttq_codes",
    "ttq_ratio",
    "log_quant",
    "inq_levels",
    "inq_quantize",
    "uniform_symmetric",
    "dorefa_weights",
    "act_levels",
    "calibrate",
    "affine_quantize",
    "stochastic_round",
]


@dataclass(frozen=True, eq=False)
class QuantizedWeights:
    """Integer ``codes`` ``(OC, F)`` of type ``dtype`` times a positive ``scale`` per row
    ``(OC,)``."""

    codes: np.ndarray
    scale: np.ndarray
    dtype: DataType

    def __post_init__(self):
        codes = np.asarray(self.codes)
        if codes.ndim != 2 or codes.dtype.kind not in "iu":
            raise ValueError(f"codes must be a 2-D integer array, not {codes.dtype} {codes.shape}")
        scale = np.broadcast_to(np.asarray(self.scale, dtype=np.float64), (codes.shape[0],)).copy()
        if not np.isfinite(scale).all() or (scale < 0).any():
            raise ValueError("scale must be finite and non-negative")
        object.__setattr__(self, "codes", codes.astype(np.int64))  # values: bipolar codes are +-1
        object.__setattr__(self, "scale", scale)

    @property
    def values(self) -> np.ndarray:
        """The quantized weights ``codes * scale`` in float64."""
        return self.codes * self.scale[:, None]

    @property
    def stored(self) -> np.ndarray:
        """The codes as the integer graph stores them: bits (1 = +1) for ``BIPOLAR``, else the
        integers."""
        return (self.codes > 0).astype(np.uint8) if self.dtype is BIPOLAR else self.codes


def _rows(w) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"weights must be a 2-D array (OC, F), not shape {w.shape}")
    return w


def _reduce(a: np.ndarray, per_channel: bool, fn) -> np.ndarray:
    return fn(a, axis=1) if per_channel else np.full(a.shape[0], fn(a))


def round_half_away(v) -> np.ndarray:
    """Round to the nearest integer, ties away from zero (``2.5 -> 3``, ``-2.5 -> -3``)."""
    v = np.asarray(v, dtype=np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def round_half_up(v) -> np.ndarray:
    """Round to the nearest integer, ties towards ``+inf`` (``2.5 -> 3``, ``-2.5 -> -2``)."""
    return np.floor(np.asarray(v, dtype=np.float64) + 0.5)


def sign(w) -> np.ndarray:
    """``sign`` with ``sign(0) = +1``, as int64 ``+-1``."""
    return np.where(np.asarray(w) >= 0, 1, -1).astype(np.int64)


def binary(w, *, per_channel: bool = True, scaled: bool = True) -> QuantizedWeights:
    """Deterministic binarization ``sign(w)``; XNOR-Net scale ``alpha = mean|W|`` (per row or
    tensor).

    ``scaled=False`` gives ``alpha = 1`` (BinaryConnect / BNN).
    """
    w = _rows(w)
    alpha = _reduce(np.abs(w), per_channel, np.mean) if scaled else np.ones(w.shape[0])
    return QuantizedWeights(sign(w), alpha, BIPOLAR)


def binary_stochastic(w, rng: np.random.Generator) -> np.ndarray:
    """Stochastic BinaryConnect: ``+1`` with probability
    ``hard_sigmoid(w) = clip((w + 1) / 2, 0, 1)``.

    A draw ``u`` uniform in ``[0, 1)`` gives ``+1`` when ``u < p``; int64 ``+-1``.
    """
    w = np.asarray(w, dtype=np.float64)
    p = np.clip((w + 1) / 2, 0, 1)
    return np.where(rng.random(w.shape) < p, 1, -1).astype(np.int64)


def twn(w, *, per_channel: bool = True) -> QuantizedWeights:
    """Ternary weight networks (Li & Liu 2016): ``delta = 0.7 mean|W|``, keep ``|w| > delta``.

    ``alpha`` is the mean magnitude of the kept weights (1 where a row keeps none).
    """
    w = _rows(w)
    a = np.abs(w)
    delta = 0.7 * _reduce(a, per_channel, np.mean)
    keep = a > delta[:, None]
    if per_channel:
        n = keep.sum(axis=1)
        alpha = np.where(n > 0, (a * keep).sum(axis=1) / np.maximum(n, 1), 1.0)
    else:
        n = keep.sum()
        alpha = np.full(w.shape[0], (a * keep).sum() / n if n else 1.0)
    return QuantizedWeights(sign(w) * keep, alpha, TERNARY)


def ttq_codes(w, t: float = 0.05) -> np.ndarray:
    """Trained ternary quantization codes (Zhu et al. 2017): ``delta = t max|W|``; int64
    ``{-1, 0, +1}``."""
    w = _rows(w)
    delta = t * np.abs(w).max()
    return (sign(w) * (np.abs(w) > delta)).astype(np.int64)


def ttq_ratio(wp: float, wn: float, max_code: int = 7) -> tuple[int, int, float]:
    """Integer codes ``(P, N)`` and a common scale ``s`` for the TTQ scales ``W_p``, ``W_n`` > 0.

    The integer graph has one accumulator, so the asymmetric pair is exported as the integers
    ``+P`` and ``-N`` (``1 <= P, N <= max_code``) times ``s = (W_p + W_n) / (P + N)``, with
    ``P / N`` the ratio nearest to ``W_p / W_n`` in the log domain (ties: the smaller ``P + N``,
    then the smaller ``P``). The training forward uses the same values, so export is exact.
    """
    if not (wp > 0 and wn > 0):
        raise ValueError(f"TTQ scales must be positive, not W_p={wp!r}, W_n={wn!r}")
    target = math.log(wp / wn)
    best = min(
        (
            (abs(math.log(p / n) - target), p + n, p, n)
            for p in range(1, max_code + 1)
            for n in range(1, max_code + 1)
        )
    )
    p, n = best[2], best[3]
    return p, n, (wp + wn) / (p + n)


def _log2_round(a: np.ndarray) -> np.ndarray:
    """``floor(log2(a) + 1/2)`` for ``a > 0``, exact: ``a = m 2^E`` (``m`` in [0.5, 1)) gives
    ``E - 1 + [m >= 2^-1/2]`` (``2^-1/2`` is irrational, so no float equals it)."""
    m, e = np.frexp(a)
    return e - 1 + (m >= math.sqrt(0.5))


def log_quant(w, bits: int, *, fsr: int | None = None) -> QuantizedWeights:
    """LogQuant (Miyashita et al. 2016) onto ``POW2_bits``: codes ``0`` or ``+-2^(e - e_min)``.

    ``e = floor(log2|w| + 1/2)`` (rounding in the log domain), clipped above at the full-scale
    exponent ``e_max = fsr`` (default: the rounded log2 of ``max|W|``);
    ``e_min = e_max - (2^(bits-1) - 2)``; a weight with ``e < e_min`` (or ``w = 0``) is zero. One
    scale ``2^e_min`` per tensor.
    """
    w = _rows(w)
    dtype = DataType.pow2(bits)
    a = np.abs(w)
    if fsr is None:
        fsr = int(_log2_round(np.array([a.max()]))[0]) if a.max() > 0 else 0
    e_min = fsr - dtype.max_exponent
    e = np.where(a > 0, _log2_round(np.where(a > 0, a, 1.0)), e_min - 1)
    e = np.minimum(e, fsr)
    nz = e >= e_min
    codes = np.where(nz, sign(w) * np.left_shift(1, np.where(nz, e - e_min, 0)), 0)
    return QuantizedWeights(codes.astype(np.int64), np.full(w.shape[0], 2.0**e_min), dtype)


def inq_levels(s: float, bits: int) -> tuple[int, int]:
    """INQ exponent range ``(n1, n2)``: ``n1 = floor(log2(4 s / 3))``,
    ``n2 = n1 + 1 - 2^(b-1) / 2``."""
    n1 = math.floor(math.log2(4 * s / 3))
    return n1, n1 + 1 - (1 << (bits - 1)) // 2


def inq_quantize(w, bits: int, s: float | None = None) -> QuantizedWeights:
    """INQ (Zhou et al. 2017) levels ``{+-2^n1 .. +-2^n2, 0}`` onto ``POW2_bits`` (scale ``2^n2``).

    The paper's rule: ``beta sgn(w)`` where ``(alpha + beta) / 2 <= |w| < 3 beta / 2`` for adjacent
    levels ``alpha < beta`` (0 is the level below ``2^n2``); nearest level, ties upwards.
    ``s`` (default ``max|W|``) fixes the levels, as INQ does once per layer.
    """
    w = _rows(w)
    s = float(np.abs(w).max()) if s is None else float(s)
    if s == 0:
        return QuantizedWeights(
            np.zeros(w.shape, np.int64), np.ones(w.shape[0]), DataType.pow2(bits)
        )
    n1, n2 = inq_levels(s, bits)
    a = np.abs(w)
    levels = 2.0 ** np.arange(n2, n1 + 1)  # ascending
    lower = np.concatenate([[0.0], levels[:-1]])
    bounds = (lower + levels) / 2  # |w| >= bounds[i] reaches level i or above
    idx = np.searchsorted(bounds, a, side="right") - 1  # -1: zero
    codes = np.where(idx >= 0, sign(w) * np.left_shift(1, np.maximum(idx, 0)), 0)
    return QuantizedWeights(
        codes.astype(np.int64), np.full(w.shape[0], 2.0**n2), DataType.pow2(bits)
    )


def uniform_symmetric(w, bits: int, *, per_channel: bool = True, mask=None) -> QuantizedWeights:
    """Symmetric uniform ``INTbits`` codes in ``[-(2^(b-1) - 1), 2^(b-1) - 1]``, max-abs
    calibration.

    ``codes = round_half_away(w / s)``, ``s = max|W| / (2^(b-1) - 1)`` per row (or tensor). With a
    pruning ``mask``, kept weights get at least the code ``+-1`` and pruned ones exactly 0, so the
    zero count equals the pruned count.
    """
    w = _rows(w)
    qmax = (1 << (bits - 1)) - 1
    m = _reduce(np.abs(w), per_channel, np.max)
    s = np.where(m > 0, m / qmax, 1.0)
    codes = np.clip(round_half_away(w / s[:, None]), -qmax, qmax).astype(np.int64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        codes = np.where(mask, np.where(codes == 0, sign(w), codes), 0)
    return QuantizedWeights(codes, s, DataType.int(bits))


def dorefa_weights(w, bits: int) -> QuantizedWeights:
    """DoReFa-Net k-bit weights: ``2 q_k(tanh(w) / (2 max|tanh W|) + 1/2) - 1``.

    ``q_k(v) = round_half_up(v n) / n`` with ``n = 2^k - 1``; the values are the odd integers
    ``c`` in ``[-n, n]`` times ``1 / n``, stored as ``INT(k+1)`` codes ``c``.
    """
    w = _rows(w)
    n = (1 << bits) - 1
    t = np.tanh(w)
    m = np.abs(t).max()
    v = t / (2 * m) + 0.5 if m > 0 else np.full(w.shape, 0.5)
    q = np.clip(round_half_up(v * n), 0, n)
    codes = (2 * q - n).astype(np.int64)
    return QuantizedWeights(codes, np.full(w.shape[0], 1.0 / n), DataType.int(bits + 1))


def act_levels(x, bits: int) -> np.ndarray:
    """Unsigned k-bit activation levels ``floor(clip(x, 0, 1) n + 1/2)``, ``n = 2^k - 1`` (float64).

    The value of level ``q`` is ``q / n`` (DoReFa activations). Level ``>= i`` exactly when
    ``x >= (i - 1/2) / n``: a MultiThreshold with ``2^k - 1`` thresholds.
    """
    n = (1 << bits) - 1
    return np.floor(np.clip(np.asarray(x, dtype=np.float64), 0, 1) * n + 0.5)


def calibrate(
    x, bits: int, *, method: str = "minmax", signed: bool = False, percentile: float = 99.9
) -> tuple[float, int]:
    """Scale and zero point of an affine ``bits``-bit quantizer calibrated on the sample ``x``.

    ``method``: ``"minmax"`` (range ``[min(x, 0), max(x, 0)]``, asymmetric), ``"maxabs"``
    (symmetric, zero point 0, codes ``[-(2^(b-1) - 1), 2^(b-1) - 1]``) or ``"percentile"``
    (asymmetric on the ``100 - p`` and ``p`` percentiles). Asymmetric codes are unsigned
    ``[0, 2^b - 1]`` (or signed ``[-2^(b-1), 2^(b-1) - 1]`` with ``signed=True``),
    ``zero_point = round_half_away(qmin - lo / s)``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if method == "maxabs":
        m = float(np.abs(x).max())
        qmax = (1 << (bits - 1)) - 1
        return (m / qmax if m > 0 else 1.0), 0
    if method == "minmax":
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    elif method == "percentile":
        lo = min(float(np.percentile(x, 100 - percentile)), 0.0)
        hi = max(float(np.percentile(x, percentile)), 0.0)
    else:
        raise ValueError(f"method must be 'minmax', 'maxabs' or 'percentile', not {method!r}")
    qmin = -(1 << (bits - 1)) if signed else 0
    qmax = qmin + (1 << bits) - 1
    s = (hi - lo) / (qmax - qmin) if hi > lo else 1.0
    return s, int(round_half_away(qmin - lo / s))


def stochastic_round(v, rng: np.random.Generator) -> np.ndarray:
    """``floor(v + u)`` with ``u`` uniform in ``[0, 1)``: unbiased, ``E[round(v)] = v``."""
    v = np.asarray(v, dtype=np.float64)
    return np.floor(v + rng.random(v.shape))


def affine_quantize(
    x,
    scale: float,
    zero_point: int,
    bits: int,
    *,
    signed: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Codes ``clip(round(x / scale) + zero_point, qmin, qmax)`` as int64.

    Rounding: half away from zero, or stochastic (:func:`stochastic_round`) when ``rng`` is given.
    The real value of a code ``q`` is ``(q - zero_point) * scale``.
    """
    v = np.asarray(x, dtype=np.float64) / scale
    r = round_half_away(v) if rng is None else stochastic_round(v, rng)
    qmin = -(1 << (bits - 1)) if signed else 0
    qmax = qmin + (1 << bits) - 1
    return np.clip(r + zero_point, qmin, qmax).astype(np.int64)
