"""Exact folding of batch-norm followed by ``sign`` into integer accumulator thresholds.

Semantics: ``ARITHMETIC.md`` section 2. A channel computes ``y = W x + b``, then
``z = gamma * (y - mu) / sigma + beta`` and the output bit ``[z >= 0]`` (``sign(0) = +1``), where
``sigma = sqrt(var + eps)`` already includes the epsilon. The fold turns this into one integer
comparison ``acc >= tau`` on the accumulator of :class:`~lowbit.ir.graph.MatMulThreshold`:

* ``theta = mu - beta * sigma / gamma``;
* ``gamma > 0``: ``z >= 0 <=> y >= theta``;
* ``gamma < 0``: the channel is negated (``W -> -W``, ``b -> -b``), so the hardware still only
  compares with ``>=``: ``z >= 0 <=> -y >= -theta``;
* ``gamma == 0``: the output is the constant ``sign(beta)``.

Every parameter is converted exactly to a :class:`fractions.Fraction` (``Fraction(float)`` is
exact for a binary64 value) and every step is exact rational arithmetic: nothing is rounded
except the final ``ceil`` that defines the integer threshold.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

import numpy as np

from ..ir.datatypes import DataType, Kind

__all__ = ["accumulator_range", "fold_bn_sign", "fold_affine_thresholds"]


def accumulator_range(input_dtype: DataType, mw: int) -> tuple[int, int]:
    """Exact range ``(lo, hi)`` of the accumulator of a bipolar-weight layer.

    Parameters
    ----------
    input_dtype : DataType
        Data type of the layer's inputs. ``BIPOLAR`` inputs give the XNOR-popcount accumulator
        ``[0, MW]``; integer inputs give the signed sum ``sum_j x_j w_j`` with ``w_j = +-1``.
    mw : int
        Number of inputs (the matrix width ``MW``).

    Returns
    -------
    tuple of int
        The same range as
        :attr:`MatMulThreshold.acc_range <lowbit.ir.graph.MatMulThreshold.acc_range>`.
    """
    if not isinstance(input_dtype, DataType):
        raise TypeError(f"input_dtype must be a DataType, not {input_dtype!r}")
    if not isinstance(mw, numbers.Integral) or isinstance(mw, bool) or mw < 1:
        raise ValueError(f"mw must be a positive integer, not {mw!r}")
    mw = int(mw)
    if input_dtype.kind is Kind.BIPOLAR:
        return 0, mw
    m = max(-input_dtype.min, input_dtype.max)
    return -mw * m, mw * m


def _exact(values, name: str, channels: int | None) -> list[Fraction]:
    """Convert a 1-D array of ints, floats or Fractions to Fractions exactly, checking
    finiteness."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, not shape {arr.shape}")
    if channels is not None and arr.shape[0] != channels:
        raise ValueError(f"{name} must have {channels} channels (as gamma), not {arr.shape[0]}")
    out = []
    for v in arr.tolist():
        if isinstance(v, bool) or not isinstance(v, (numbers.Rational, float)):
            raise TypeError(f"{name} must hold real numbers, not {type(v).__name__} {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{name} must be finite, not {v!r}")
        out.append(Fraction(v))
    return out


def fold_bn_sign(
    gamma, beta, mean, sigma, *, input_dtype: DataType, mw: int, bias=None
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``sign(batchnorm(W x + b))`` into integer thresholds on the accumulator.

    Parameters
    ----------
    gamma, beta, mean, sigma : array_like, shape (C,)
        Batch-norm scale, shift, mean and standard deviation per channel. ``sigma`` includes the
        epsilon (``sigma = sqrt(var + eps)``) and must be positive. Integers, floats (converted
        exactly with ``Fraction(float)``) or :class:`fractions.Fraction` values.
    input_dtype : DataType
        Data type of the layer's inputs; selects the accumulator form. ``BIPOLAR``: the
        accumulator is the popcount ``p`` of ``XNOR(x, w)`` and ``y = 2 p - MW + b``. Integer
        types: the accumulator is ``sum_j x_j w_j`` and ``y = acc + b``.
    mw : int
        Number of inputs of the layer (``MW``).
    bias : array_like, shape (C,), optional
        The layer bias ``b`` (zero if omitted).

    Returns
    -------
    thresholds : numpy.ndarray of int64, shape (C, 1)
        ``tau`` such that the output bit is ``acc >= tau``, computed on the negated channel where
        ``negate`` is set. Clipped into ``[acc_lo, acc_hi + 1]`` of :func:`accumulator_range`,
        which keeps the comparison unchanged for every reachable accumulator value; a constant
        channel (``gamma == 0``) gets ``acc_lo`` (always 1) or ``acc_hi + 1`` (never 1).
    negate : numpy.ndarray of bool, shape (C,)
        Channels with ``gamma < 0``: the caller must negate that channel's weights (flip its
        weight bits) and bias; the output bit is then the same as the unfolded layer's.
    """
    lo, hi = accumulator_range(input_dtype, mw)
    mw = int(mw)
    binary = input_dtype.kind is Kind.BIPOLAR
    g = _exact(gamma, "gamma", None)
    c = len(g)
    be = _exact(beta, "beta", c)
    mu = _exact(mean, "mean", c)
    sg = _exact(sigma, "sigma", c)
    b = _exact(np.zeros(c, dtype=np.int64) if bias is None else bias, "bias", c)
    for i, s in enumerate(sg):
        if s <= 0:
            raise ValueError(f"sigma must be positive, not {float(s)!r} (channel {i})")

    taus, negate = [], []
    for gi, bei, mui, sgi, bi in zip(g, be, mu, sg, b):
        if gi == 0:
            taus.append(lo if bei >= 0 else hi + 1)
            negate.append(False)
            continue
        theta = mui - bei * sgi / gi
        neg = gi < 0
        if neg:  # z >= 0  <=>  y <= theta  <=>  (-y) >= (-theta), with -y = (-W) x + (-b)
            theta, bi = -theta, -bi
        # Solve y >= theta for the accumulator: y = 2 acc - MW + b (binary) or y = acc + b.
        tau = math.ceil((theta - bi + mw) / 2) if binary else math.ceil(theta - bi)
        taus.append(min(max(tau, lo), hi + 1))
        negate.append(neg)
    return np.array(taus, dtype=np.int64).reshape(c, 1), np.array(negate, dtype=bool)


def fold_affine_thresholds(a, c, levels, *, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``out = sum_i [a * acc + c >= t_i]`` into integer thresholds on ``acc`` (exactly).

    This is the MultiThreshold form of every quantized layer of the zoo: ``a`` and ``c`` (one per
    channel) collect the input and weight scales and the batch-norm (``a = gamma s_in s_w / sigma``,
    ``c = beta - gamma mean / sigma``), and ``levels`` ``t_1 <= ... <= t_k`` are the activation
    quantizer's decision points (``[0]`` for ``sign``; ``(i - 1/2) / n`` for ``n``-level unsigned
    activations). Everything is exact rational arithmetic (floats convert exactly to Fractions).

    Parameters
    ----------
    a, c : array_like, shape (C,)
        Slope and offset per channel (ints, floats or Fractions).
    levels : sequence of numbers
        Ascending decision points ``t_i``.
    lo, hi : int
        Range of the accumulator ``acc`` (integers): thresholds are clipped into ``[lo, hi + 1]``.

    Returns
    -------
    thresholds : numpy.ndarray of int64, shape (C, k)
        Ascending per row; the output is ``sum_i [s acc >= T_i]`` with ``s = -1`` where ``negate``.
    negate : numpy.ndarray of bool, shape (C,)
        Channels with ``a < 0``, whose weights the caller negates so that the hardware only
        compares with ``>=``. A channel with ``a == 0`` is constant: ``T_i = lo`` where
        ``c >= t_i``, else ``hi + 1``.
    """
    av = _exact(a, "a", None)
    cv = _exact(c, "c", len(av))
    ts = _exact(np.asarray(list(levels), dtype=object), "levels", None)
    if any(t1 > t2 for t1, t2 in zip(ts, ts[1:])):
        raise ValueError("levels must be ascending")
    rows, negate = [], []
    for ai, ci in zip(av, cv):
        if ai == 0:
            rows.append([lo if ci >= t else hi + 1 for t in ts])
        else:
            # a acc + c >= t  <=>  |a| (s acc) >= t - c  <=>  s acc >= ceil((t - c) / |a|)
            rows.append([min(max(math.ceil((t - ci) / abs(ai)), lo), hi + 1) for t in ts])
        negate.append(ai < 0)
    return np.array(rows, dtype=np.int64).reshape(len(av), len(ts)), np.array(negate, dtype=bool)
