"""Streamlining to integer form: exact element-wise functions and their integer thresholds.

After a matrix product the importer knows the real-valued activation of every output channel as a
function of the integer dot product ``d`` of the layer (``d = 2 * popcount - MW`` for XNOR layers,
the exact signed sum otherwise)::

    value_c(d) = chain_c(S_c * d + O_c)

where ``S_c``, ``O_c`` collect weight scales, input scales and offsets, biases, batch-norm and
constant ``Add``/``Mul``/``Sub``/``Div`` (all exact :class:`~fractions.Fraction` values) and the
chain holds the monotone element-wise operations (``Relu``, ``Clip``, ``Quant``, ``BipolarQuant``,
``Trunc``, ``MultiThreshold``, ``QuantizeLinear``, ``Sign``). The last quantizer of the chain maps
its input to an integer *code*; :func:`solve_thresholds` finds, per channel and code boundary, the
smallest accumulator that reaches the code, by bisection on exact rational arithmetic (every
function is monotone), so the integer graph reproduces the quantized activation exactly: no float
rounding anywhere. Channels whose function decreases are negated (``ARITHMETIC.md`` section 2), so
the hardware only compares with ``>=``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..ir.boundary import round_mode
from ..ir.datatypes import BIPOLAR, DataType, Kind

__all__ = [
    "round_mode",
    "Affine",
    "Relu",
    "Clip",
    "IntQuantizer",
    "BipolarQuantizer",
    "ThresholdQuantizer",
    "SignQuantizer",
    "TruncQuantizer",
    "exact",
    "round_exact",
    "Solved",
    "solve_thresholds",
    "fraction_array",
]


def exact(v) -> Fraction:
    """A finite real number as an exact Fraction (floats are converted exactly)."""
    if isinstance(v, Fraction):
        return v
    if isinstance(v, (np.floating, float)):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"non-finite value {f!r}")
        return Fraction(f)
    return Fraction(int(v))


def fraction_array(values) -> np.ndarray:
    """An object array of exact Fractions with the shape of ``values``."""
    a = np.asarray(values)
    out = np.empty(a.shape, dtype=object)
    for i, v in np.ndenumerate(a):
        out[i] = exact(v)
    return out


def round_exact(x: Fraction, mode: str) -> int:
    """Round an exact Fraction like the QONNX rounding modes (``ROUND`` is half to even)."""
    m = mode.upper()
    if m in ("ROUND", "HALF_EVEN"):
        return round(x)
    if m == "FLOOR":
        return math.floor(x)
    if m == "CEIL":
        return math.ceil(x)
    if m in ("DOWN", "ROUND_TO_ZERO"):
        return math.trunc(x)
    sign = -1 if x < 0 else 1
    if m == "UP":
        return sign * math.ceil(abs(x))
    if m == "HALF_UP":
        return sign * math.floor(abs(x) + Fraction(1, 2))
    if m == "HALF_DOWN":
        return sign * math.ceil(abs(x) - Fraction(1, 2))
    raise ValueError(f"unknown rounding mode {mode!r}")


# -- element-wise functions (per channel c, exact) ------------------------------------------------


@dataclass(frozen=True, eq=False)
class Affine:
    """``x -> scale[c] * x + offset[c]`` (object arrays of Fractions, one entry per channel)."""

    scale: np.ndarray
    offset: np.ndarray

    def __call__(self, x: Fraction, c: int) -> Fraction:
        return self.scale[c] * x + self.offset[c]

    def vec(self, x: np.ndarray, c: int) -> np.ndarray:
        return float(self.scale[c]) * x + float(self.offset[c])


@dataclass(frozen=True)
class Relu:
    def __call__(self, x: Fraction, c: int) -> Fraction:
        return x if x > 0 else Fraction(0)

    def vec(self, x, c):
        return np.maximum(x, 0.0)


@dataclass(frozen=True)
class Clip:
    lo: Fraction | None
    hi: Fraction | None

    def __call__(self, x: Fraction, c: int) -> Fraction:
        if self.lo is not None and x < self.lo:
            return self.lo
        if self.hi is not None and x > self.hi:
            return self.hi
        return x

    def vec(self, x, c):
        return np.clip(
            x,
            -np.inf if self.lo is None else float(self.lo),
            np.inf if self.hi is None else float(self.hi),
        )


class _Quantizer:
    """A quantizer maps a value to an integer code (monotone non-decreasing) and a code to a
    value."""

    def code(self, x: Fraction, c: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def value(self, code: int, c: int) -> Fraction:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x: Fraction, c: int) -> Fraction:
        return self.value(self.code(x, c), c)

    def vcode(self, x: np.ndarray, c: int) -> np.ndarray:
        """Codes in float arithmetic (a guess that :func:`solve_thresholds` verifies exactly)."""
        return np.array([self.code(Fraction(float(v)), c) for v in x], dtype=np.float64)

    def vec(self, x: np.ndarray, c: int) -> np.ndarray:
        codes = self.vcode(x, c)
        v0, v1 = float(self.value(0, c)), float(self.value(1, c))
        return v0 + (v1 - v0) * codes


@dataclass(frozen=True, eq=False)
class IntQuantizer(_Quantizer):
    """QONNX ``Quant`` / ONNX ``QuantizeLinear``: ``code = clip(round(x / scale + zp), lo, hi)``.

    ``value(code) = (code - zp) * scale`` (``dequantize=True``) or ``code`` (``QuantizeLinear``,
    whose output is the integer tensor itself).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    lo: int
    hi: int
    rounding: str = "ROUND"
    round_then_clip: bool = False
    dequantize: bool = True

    @property
    def nominal(self):
        return self.lo, self.hi

    def code(self, x, c):
        y = x / self.scale[c] + self.zero_point[c]
        if self.round_then_clip:
            return min(max(round_exact(y, self.rounding), self.lo), self.hi)
        return round_exact(min(max(y, Fraction(self.lo)), Fraction(self.hi)), self.rounding)

    def value(self, code, c):
        if not self.dequantize:
            return Fraction(code)
        return (code - self.zero_point[c]) * self.scale[c]

    def vcode(self, x, c):
        y = x / float(self.scale[c]) + float(self.zero_point[c])
        if self.round_then_clip:
            return np.clip(round_mode(self.rounding)(y), self.lo, self.hi)
        return round_mode(self.rounding)(np.clip(y, self.lo, self.hi))


@dataclass(frozen=True, eq=False)
class BipolarQuantizer(_Quantizer):
    """``BipolarQuant``: code 1 when ``x / scale >= 0`` (value ``+scale``), else 0 (value
    ``-scale``)."""

    scale: np.ndarray
    nominal = (0, 1)

    def code(self, x, c):
        return 1 if x / self.scale[c] >= 0 else 0

    def value(self, code, c):
        return self.scale[c] if code else -self.scale[c]

    def vcode(self, x, c):
        return (x >= 0).astype(np.float64)


@dataclass(frozen=True)
class SignQuantizer(_Quantizer):
    """ONNX ``Sign``: codes -1, 0, +1 (``Sign(0) = 0`` in ONNX)."""

    nominal = (-1, 1)

    def code(self, x, c):
        return (x > 0) - (x < 0)

    def value(self, code, c):
        return Fraction(code)

    def vcode(self, x, c):
        return np.sign(x)


@dataclass(frozen=True, eq=False)
class ThresholdQuantizer(_Quantizer):
    """QONNX ``MultiThreshold``: ``code = sum_i [x >= T[c, i]]``,
    ``value = out_scale * code + out_bias``."""

    thresholds: np.ndarray  # object array (C, k) of Fractions
    out_scale: Fraction
    out_bias: Fraction

    @property
    def nominal(self):
        return 0, self.thresholds.shape[1]

    def code(self, x, c):
        return bisect.bisect_right(self._rows[c], x)  # thresholds are sorted: the count of T <= x

    @property
    def _rows(self):
        rows = self.__dict__.get("_rows_cache")
        if rows is None:
            rows = [list(r) for r in self.thresholds]
            object.__setattr__(self, "_rows_cache", rows)
        return rows

    def value(self, code, c):
        return self.out_scale * code + self.out_bias

    def vcode(self, x, c):
        t = np.array([float(v) for v in self.thresholds[c]])
        return np.searchsorted(t, x, side="right").astype(np.float64)


@dataclass(frozen=True, eq=False)
class TruncQuantizer(_Quantizer):
    """QONNX ``Trunc``: ``code = rounding(round(x / scale + zp) / 2^shift)`` (clipped when
    ``lo``/``hi`` set); ``value = (code - zp / 2^shift) * out_scale``."""

    scale: np.ndarray
    zero_point: np.ndarray
    shift_scale: Fraction
    out_scale: np.ndarray
    rounding: str
    lo: int | None = None
    hi: int | None = None

    @property
    def nominal(self):
        return None if self.lo is None else (self.lo, self.hi)

    def code(self, x, c):
        y = Fraction(round(x / self.scale[c] + self.zero_point[c])) / self.shift_scale
        if self.lo is not None:
            y = min(max(y, Fraction(self.lo)), Fraction(self.hi))
        return round_exact(y, self.rounding)

    def vcode(self, x, c):
        """Codes in float arithmetic, vectorised (a guess that :func:`solve_thresholds` verifies
        exactly)."""
        y = np.round(x / float(self.scale[c]) + float(self.zero_point[c])) / float(
            self.shift_scale
        )
        if self.lo is not None:
            y = np.clip(y, self.lo, self.hi)
        return round_mode(self.rounding)(y)

    def value(self, code, c):
        return (code - self.zero_point[c] / self.shift_scale) * self.out_scale[c]


def is_quantizer(op) -> bool:
    return isinstance(op, _Quantizer)


# -- thresholds ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Solved:
    """Thresholds of one layer and what its output codes mean.

    ``thresholds`` ``(C, 2^k - 1)`` (or ``(C, 1)`` for ``BIPOLAR``) on the accumulator, on the
    negated channel where ``negate`` is set; the output value of channel ``c`` is
    ``scale[c] * values(out, dtype) + offset[c]``.
    """

    thresholds: np.ndarray
    negate: np.ndarray
    dtype: DataType
    scale: np.ndarray
    offset: np.ndarray


def _first_reaching(f, level: int, lo: int, hi: int) -> int:
    """The smallest ``a`` in ``[lo, hi]`` with ``f(a) >= level`` (``hi + 1`` when none); ``f``
    non-decreasing."""
    if f(hi) < level:
        return hi + 1
    if f(lo) >= level:
        return lo
    a, b = lo, hi  # f(a) < level <= f(b)
    while b - a > 1:
        mid = (a + b) // 2
        if f(mid) >= level:
            b = mid
        else:
            a = mid
    return b


def _bits(levels: int) -> int:
    return 1 if levels <= 2 else (levels - 1).bit_length()


_GUESS_LIMIT = 1 << 20


def _guess(func_vec, vcode, c, negated, neg_acc, lo, hi, cmin, cmax):
    """Float guesses of the smallest accumulator reaching each code ``cmin + 1 .. cmax`` (verified
    exactly later)."""
    levels = np.arange(cmin + 1, cmax + 1, dtype=np.float64)

    def codes(a):
        a = np.asarray(a, dtype=np.int64)
        with np.errstate(all="ignore"):
            return np.nan_to_num(
                vcode(func_vec((neg_acc(a) if negated else a).astype(np.float64), c), c),
                nan=-np.inf,
            )

    if (
        hi - lo + 1 <= _GUESS_LIMIT
    ):  # every accumulator value: a monotone envelope and a binary search
        env = np.maximum.accumulate(codes(np.arange(lo, hi + 1)))
        return lo + np.searchsorted(env, levels, side="left")
    a = np.full(levels.shape, lo, dtype=np.int64)  # vectorised bisection over all levels at once
    b = np.full(levels.shape, hi + 1, dtype=np.int64)
    while (b - a > 1).any():
        mid = (a + b) // 2
        up = codes(mid) >= levels
        b = np.where(up, mid, b)
        a = np.where(up, a, mid)
    return np.where(codes(a) >= levels, a, b)


def _channel_bounds(f, cmin, cmax, lo, hi, guess) -> list[int]:
    """Smallest accumulator reaching each code ``cmin + 1 .. cmax``: float guesses verified
    exactly."""
    cache: dict[int, int] = {}

    def fc(a):
        if a not in cache:
            cache[a] = f(a)
        return cache[a]

    out = []
    for j, level in enumerate(range(cmin + 1, cmax + 1)):
        t = None
        if guess is not None:
            g = int(guess[j])
            if (
                lo <= g <= hi + 1
                and (g == lo or fc(g - 1) < level)
                and (g == hi + 1 or fc(g) >= level)
            ):
                t = g
        out.append(_first_reaching(fc, level, lo, hi) if t is None else t)
    return out


def solve_thresholds(
    func,
    code_of,
    value_of,
    channels: int,
    acc_lo: int,
    acc_hi: int,
    neg_acc,
    name: str,
    nominal: tuple[int, int] | None = None,
    func_vec=None,
    vcode=None,
) -> Solved:
    """Integer thresholds of the channel functions ``code_of(func(a, c), c)`` on the accumulator
    ``a``.

    Parameters
    ----------
    func : callable ``(a, c) -> Fraction``
        The value reaching the last quantizer, for accumulator ``a`` of channel ``c``.
    code_of, value_of : callables
        The last quantizer's code of a value, and the output value of a code (per channel).
    acc_lo, acc_hi : int
        The accumulator range of the layer (as :attr:`MatMulThreshold.acc_range`).
    neg_acc : callable ``a -> a'``
        The accumulator of the negated channel, for channels whose function decreases.
    nominal : (int, int), optional
        The quantizer's code range. The output keeps every code of it unless the codes actually
        reached (over all channels and accumulators) need fewer bits; then only those are kept.
    """
    negate = np.zeros(channels, dtype=bool)
    fns = []
    codes_lo, codes_hi = [], []
    for c in range(channels):
        lo_code = code_of(func(acc_lo, c), c)
        hi_code = code_of(func(acc_hi, c), c)
        if lo_code > hi_code:
            negate[c] = True
            fns.append(lambda a, c=c: code_of(func(neg_acc(a), c), c))
            lo_code, hi_code = hi_code, lo_code
        else:
            fns.append(lambda a, c=c: code_of(func(a, c), c))
        codes_lo.append(lo_code)
        codes_hi.append(hi_code)
    cmin, cmax = min(codes_lo), max(codes_hi)
    if nominal is not None:
        cmin, cmax = min(cmin, nominal[0]), max(cmax, nominal[1])
    # boundaries[c][j]: smallest accumulator reaching code cmin + j (j = 1 .. cmax - cmin)
    bounds = np.array(
        [
            _channel_bounds(
                fns[c],
                cmin,
                cmax,
                acc_lo,
                acc_hi,
                None
                if func_vec is None
                else _guess(func_vec, vcode, c, negate[c], neg_acc, acc_lo, acc_hi, cmin, cmax),
            )
            for c in range(channels)
        ],
        dtype=np.int64,
    ).reshape(channels, cmax - cmin)
    # Codes reached by some channel: code cmin + j is reached on c when T_j < T_{j+1} (T_0 = lo,
    # T_L = hi + 1).
    full = np.concatenate(
        [np.full((channels, 1), acc_lo), bounds, np.full((channels, 1), acc_hi + 1)], axis=1
    )
    reached = [j for j in range(cmax - cmin + 1) if (full[:, j] < full[:, j + 1]).any()]
    total = cmax - cmin + 1
    consecutive = reached == list(range(reached[0], reached[-1] + 1)) if reached else True
    if len(reached) == 2 and _bits(2) < _bits(total):
        levels = reached
    elif len(reached) < 2 and _bits(total) > 1:
        first = reached[0] if reached else 0
        levels = [first, first + 1] if first + 1 <= cmax - cmin else [first - 1, first]
    elif len(reached) > 2 and consecutive and _bits(len(reached)) < _bits(total):
        levels = list(range(reached[0], reached[-1] + 1))
    else:
        levels = list(range(max(2, total)))
    # Threshold for output level i: smallest accumulator reaching code levels[i].
    t = full[:, levels[1:]]
    n = len(levels)
    if n == 2:
        dtype = BIPOLAR
    else:
        dtype = DataType.uint(max(2, (n - 1).bit_length()))
        pad = (1 << dtype.bits) - 1 - t.shape[1]
        t = np.concatenate([t, np.full((channels, pad), acc_hi + 1)], axis=1)
    scale = np.empty(channels, dtype=object)
    offset = np.empty(channels, dtype=object)
    for c in range(channels):
        v0 = value_of(cmin + levels[0], c)
        v1 = value_of(cmin + levels[1], c)
        if dtype.kind is Kind.BIPOLAR:
            scale[c], offset[c] = (v1 - v0) / 2, (v1 + v0) / 2
        else:
            scale[c], offset[c] = v1 - v0, v0
    return Solved(t.astype(np.int64), negate, dtype, scale, offset)
