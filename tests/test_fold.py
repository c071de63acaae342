"""Batch-norm + sign folding into integer thresholds: hand-worked values, then an exhaustive check
of ``acc >= tau`` against an exact rational evaluation of ``gamma * (y - mu) / sigma + beta >= 0``."""

import math
from fractions import Fraction

import numpy as np
import pytest

from lowbit.ir import BIPOLAR, DataType, MatMulThreshold
from lowbit.quant.fold import accumulator_range, fold_bn_sign

UINT2, UINT5, INT3 = DataType.uint(2), DataType.uint(5), DataType.int(3)


def exact_bit(gamma, beta, mean, sigma, y) -> bool:
    """The oracle: ``z >= 0`` evaluated in exact rational arithmetic (sign(0) = +1)."""
    g, be, mu, s = (Fraction(v) for v in (gamma, beta, mean, sigma))
    return g * (Fraction(y) - mu) / s + be >= 0


# -- hand-worked values ---------------------------------------------------------------------------

def test_hand_worked_binary_input():
    # MW = 8, y = 2p - 8.
    # ch0: gamma > 0, theta = 3 - 0.5 * 2 / 1 = 2: y >= 2 <=> p >= 5.
    # ch1: gamma < 0, theta = 3 - 0.5 * 2 / -1 = 4: y <= 4 <=> p <= 6 <=> p' = 8 - p >= 2.
    # ch2, ch3: gamma == 0, constant sign(beta): always (tau = 0) and never (tau = MW + 1 = 9).
    # ch4: bias 1.5, theta = 2: 2p - 8 + 1.5 >= 2 <=> p >= 4.25 <=> p >= 5.
    t, neg = fold_bn_sign([1.0, -1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 1.0, -1.0, 0.5],
                          [3.0, 3.0, 0.0, 0.0, 3.0], [2.0, 2.0, 1.0, 1.0, 2.0],
                          bias=[0.0, 0.0, 0.0, 0.0, 1.5], input_dtype=BIPOLAR, mw=8)
    assert t.dtype == np.int64 and t.shape == (5, 1)
    assert np.array_equal(t[:, 0], [5, 2, 0, 9, 5])
    assert np.array_equal(neg, [False, True, False, False, False])


def test_hand_worked_integer_input():
    # ch0: theta = 2.5 - 1 * 1 / 2 = 2: acc >= 2.
    # ch1: gamma < 0: theta = 2.5 - 1 * 1 / -2 = 3: y <= 3 <=> -acc >= -3.
    # ch2: bias -0.25, theta = 2: acc - 0.25 >= 2 <=> acc >= 2.25 <=> acc >= 3.
    t, neg = fold_bn_sign([2.0, -2.0, 2.0], [1.0, 1.0, 1.0], [2.5, 2.5, 2.5], [1.0, 1.0, 1.0],
                          bias=[0.0, 0.0, -0.25], input_dtype=UINT5, mw=4)
    assert np.array_equal(t[:, 0], [2, -3, 3])
    assert np.array_equal(neg, [False, True, False])


def test_exact_where_float64_rounds_wrong():
    # theta = 2 - 0.72 * 2.5 / 0.12 is exactly -13 for these binary64 values, but the float64
    # evaluation gives -12.999999999999998, whose ceil is -12. At y = -13, z is exactly 0: bit 1.
    gamma, beta, mean, sigma = 0.12, 0.72, 2.0, 2.5
    assert math.ceil(mean - beta * sigma / gamma) == -12
    assert exact_bit(gamma, beta, mean, sigma, -13) and not exact_bit(gamma, beta, mean, sigma, -14)
    t, neg = fold_bn_sign([gamma], [beta], [mean], [sigma], input_dtype=UINT5, mw=4)
    assert t[0, 0] == -13 and not neg[0]


def test_sign_of_zero_is_plus_one():
    # beta = 0, mu = 5: z = 0 exactly at y = 5, which must give 1, for either sign of gamma.
    t, neg = fold_bn_sign([1.0, -1.0], [0.0, 0.0], [5.0, 5.0], [1.0, 1.0], input_dtype=UINT5, mw=4)
    assert np.array_equal(t[:, 0], [5, -5]) and np.array_equal(neg, [False, True])


def test_clipping_to_accumulator_range():
    # A tiny gamma pushes theta far outside the range; the thresholds are clipped to [lo, hi + 1].
    t, neg = fold_bn_sign([1e-300, 1e-300, -1e-300], [1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0],
                          input_dtype=BIPOLAR, mw=6)
    assert np.array_equal(t[:, 0], [0, 7, 0]) and np.array_equal(neg, [False, False, True])
    # A tiny sigma puts theta next to the mean: y >= 0 (p >= 3), or y > 0 (p >= 4).
    t, _ = fold_bn_sign([1.0, 1.0], [1.0, -1.0], [0.0, 0.0], [1e-300, 1e-300], input_dtype=BIPOLAR, mw=6)
    assert np.array_equal(t[:, 0], [3, 4])
    t, _ = fold_bn_sign([1.0, 1.0], [1e300, -1e300], [0.0, 0.0], [1.0, 1.0], input_dtype=INT3, mw=3)
    assert np.array_equal(t[:, 0], [-12, 13])


def test_accepts_fractions_and_integers():
    t, neg = fold_bn_sign([Fraction(1, 3)], [Fraction(-1, 7)], [1], [Fraction(2, 3)], input_dtype=UINT5, mw=2)
    # theta = 1 + (1/7) * (2/3) * 3 = 1 + 2/7: acc >= 2.
    assert t[0, 0] == 2 and not neg[0]


# -- exhaustive property ---------------------------------------------------------------------------

def random_bn(rng, c, *, y_lo, y_hi):
    """Batch-norm parameters with every gamma sign (several channels each), ties and extremes."""
    gamma = rng.uniform(0.05, 3.0, c) * rng.choice([-1.0, 1.0], c)
    gamma[:3] = 0.0
    gamma[3:6] = -np.abs(gamma[3:6])
    gamma[6:9] = np.abs(gamma[6:9])
    beta = rng.normal(0.0, 1.5, c)
    beta[0], beta[1], beta[2] = 0.0, -0.5, 0.25  # gamma == 0: sign(0) = +1, never, always
    mean = rng.uniform(y_lo - 2, y_hi + 2, c)
    sigma = np.sqrt(rng.uniform(0.0, 4.0, c) + 1e-5)
    # z == 0 exactly at an integer y: beta = 0 and an integer mean, for both signs of gamma.
    tie = slice(9, 13)
    beta[tie] = 0.0
    mean[tie] = rng.integers(y_lo, y_hi + 1, 4)
    # Extremes that need clipping: a tiny sigma or a huge beta.
    sigma[13] = 1e-12
    beta[14] = 1e6
    bias = rng.normal(0.0, 2.0, c)
    bias[:c // 2] = np.round(bias[:c // 2])
    return gamma, beta, mean, sigma, bias


@pytest.mark.parametrize("mw", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exhaustive_binary_input(mw, seed):
    rng = np.random.default_rng(1000 * mw + seed)
    c = 40
    gamma, beta, mean, sigma, bias = random_bn(rng, c, y_lo=-mw - 2, y_hi=mw + 2)
    for b in (None, bias):
        t, neg = fold_bn_sign(gamma, beta, mean, sigma, bias=b, input_dtype=BIPOLAR, mw=mw)
        assert t.dtype == np.int64 and t.shape == (c, 1) and neg.dtype == bool and neg.shape == (c,)
        assert np.array_equal(neg, gamma < 0)
        assert (t >= 0).all() and (t <= mw + 1).all()
        bb = np.zeros(c) if b is None else b
        for ch in range(c):
            for p in range(mw + 1):  # p: popcount of XNOR with the original (un-negated) weights
                y = 2 * Fraction(p) - mw + Fraction(bb[ch])
                acc = mw - p if neg[ch] else p  # flipped weight bits: every match becomes a mismatch
                assert (acc >= t[ch, 0]) == exact_bit(gamma[ch], beta[ch], mean[ch], sigma[ch], y), (ch, p)


@pytest.mark.parametrize("dtype,mw", [(UINT2, 1), (UINT2, 3), (INT3, 2), (UINT5, 2)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exhaustive_integer_input(dtype, mw, seed):
    rng = np.random.default_rng(seed)
    lo, hi = accumulator_range(dtype, mw)
    c = 40
    gamma, beta, mean, sigma, bias = random_bn(rng, c, y_lo=lo, y_hi=hi)
    for b in (None, bias):
        t, neg = fold_bn_sign(gamma, beta, mean, sigma, bias=b, input_dtype=dtype, mw=mw)
        assert np.array_equal(neg, gamma < 0)
        assert (t >= lo).all() and (t <= hi + 1).all()
        bb = np.zeros(c) if b is None else b
        for ch in range(c):
            for a in range(lo, hi + 1):  # a: accumulator with the original weights, y = a + b
                y = Fraction(a) + Fraction(bb[ch])
                acc = -a if neg[ch] else a
                assert (acc >= t[ch, 0]) == exact_bit(gamma[ch], beta[ch], mean[ch], sigma[ch], y), (ch, a)


def test_integer_input_through_graph_node():
    # The fold as used by a MatMulThreshold node on every input of a small UINT2 layer.
    rng = np.random.default_rng(7)
    mw, c = 3, 24
    w = rng.integers(0, 2, (c, mw)).astype(np.uint8)
    gamma, beta, mean, sigma, _ = random_bn(rng, c, y_lo=-9, y_hi=9)
    t, neg = fold_bn_sign(gamma, beta, mean, sigma, input_dtype=UINT2, mw=mw)
    wf = w.copy()
    wf[neg] ^= 1
    node = MatMulThreshold("fc0", UINT2, wf, t)
    x = np.array(np.meshgrid(*[range(4)] * mw)).reshape(mw, -1).T  # all 64 inputs
    y = x @ (2 * w.astype(np.int64) - 1).T
    expected = [[exact_bit(gamma[ch], beta[ch], mean[ch], sigma[ch], int(y[i, ch])) for ch in range(c)]
                for i in range(len(x))]
    assert np.array_equal(node.reference(x), np.array(expected, dtype=np.int64))


@pytest.mark.parametrize("dtype", [BIPOLAR, UINT2, UINT5, INT3, DataType.int(8)])
@pytest.mark.parametrize("mw", [1, 7, 64])
def test_accumulator_range_matches_graph(dtype, mw):
    node = MatMulThreshold("n", dtype, np.ones((1, mw), dtype=np.uint8), None)
    assert accumulator_range(dtype, mw) == node.acc_range


# -- errors -----------------------------------------------------------------------------------------

def test_errors_name_the_parameter():
    ok = dict(input_dtype=BIPOLAR, mw=4)
    with pytest.raises(ValueError, match=r"^sigma must be positive, not 0\.0 \(channel 1\)$"):
        fold_bn_sign([1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0], **ok)
    with pytest.raises(ValueError, match=r"^beta must have 2 channels \(as gamma\), not 3$"):
        fold_bn_sign([1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0], [1.0, 1.0], **ok)
    with pytest.raises(ValueError, match=r"^mean must be finite, not nan$"):
        fold_bn_sign([1.0], [0.0], [float("nan")], [1.0], **ok)
    with pytest.raises(ValueError, match=r"^gamma must be a 1-D array, not shape \(1, 1\)$"):
        fold_bn_sign([[1.0]], [0.0], [0.0], [1.0], **ok)
    with pytest.raises(ValueError, match=r"^mw must be a positive integer, not 0$"):
        fold_bn_sign([1.0], [0.0], [0.0], [1.0], input_dtype=BIPOLAR, mw=0)
    with pytest.raises(TypeError, match=r"^input_dtype must be a DataType, not 'BIPOLAR'$"):
        fold_bn_sign([1.0], [0.0], [0.0], [1.0], input_dtype="BIPOLAR", mw=4)


# -- fold_affine_thresholds: the MultiThreshold fold of the zoo's layers ----------------------------

from lowbit.quant.fold import fold_affine_thresholds  # noqa: E402


def test_affine_hand_worked():
    # ch0: 2 acc + 1 >= 0 <=> acc >= -1/2 <=> acc >= 0.
    # ch1: -acc + 1/2 >= 0 <=> acc <= 1/2 <=> -acc >= 0 (negated).
    # ch2, ch3: a = 0, constant c >= 0: always (lo) / never (hi + 1).
    t, neg = fold_affine_thresholds([2.0, -1.0, 0.0, 0.0], [1.0, 0.5, 0.5, -1.0], [0], lo=-10, hi=10)
    assert t.tolist() == [[0], [0], [-10], [11]] and neg.tolist() == [False, True, False, False]
    # A 2-bit activation: acc / 3 against (i - 1/2) / 3: levels at acc >= 1, 2, 3 (1/2, 3/2, 5/2 rounded up).
    t, _ = fold_affine_thresholds([Fraction(1, 3)], [0], [Fraction(1, 6), Fraction(1, 2), Fraction(5, 6)], lo=-9, hi=9)
    assert t.tolist() == [[1, 2, 3]]
    # Clipping into [lo, hi + 1].
    t, _ = fold_affine_thresholds([1e-9], [0.0], [0.5, 1.0], lo=-4, hi=4)
    assert t.tolist() == [[5, 5]]


@pytest.mark.parametrize("seed", range(4))
def test_affine_exhaustive_against_rationals(seed):
    rng = np.random.default_rng(seed)
    c_n, lo, hi = 30, -12, 12
    a = rng.normal(0, 0.3, c_n) * rng.choice([1.0, -1.0], c_n)
    a[:2] = 0.0
    c = rng.normal(0, 1.0, c_n)
    c[2:6] = 0.0  # ties: a acc + c lands exactly on a level
    a[2:6] = [0.25, -0.25, 0.5, -1 / 3]
    n = 3
    levels = [Fraction(2 * i - 1, 2 * n) for i in range(1, n + 1)]
    t, neg = fold_affine_thresholds(a, c, levels, lo=lo, hi=hi)
    assert (np.diff(t, axis=1) >= 0).all()
    for ch in range(c_n):
        for acc in range(lo, hi + 1):
            z = Fraction(a[ch]) * acc + Fraction(c[ch])
            expected = sum(z >= lv for lv in levels)
            s = -acc if neg[ch] else acc
            assert int((s >= t[ch]).sum()) == expected, (ch, acc)
