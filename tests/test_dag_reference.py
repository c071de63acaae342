"""Issue 19, the oracle first: the reference operators beyond chains against values worked by hand
(depthwise convolution with every MAC kind, 1-D windows and pooling, global average pooling with
Brevitas' rounding, the Add join's exact requantization, Concat), then against a second
implementation where one exists."""

from fractions import Fraction

import numpy as np
import pytest

from lowbit.sw_reference import (
    add_threshold,
    concat,
    depthwise_int,
    depthwise_xnor,
    int_matmul,
    join_coefficients,
    maxpool1d,
    monotone_thresholds,
    multithreshold,
    simplest_join,
    sliding_window,
    sliding_window_1d,
    trunc_avg_pool,
)

# -- depthwise convolution ---------------------------------------------------------------------


def test_depthwise_int_by_hand_ternary_pow2_kbit():
    # a 2x2 image of 2 channels, kernel 2: one window, columns (ky, kx, c):
    # tap 0 = (0,0): c0 1, c1 2; tap 1 = (0,1): c0 3, c1 4; tap 2 = (1,0): 5, 6; tap 3 = (1,1): 7, 8
    img = np.array([[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]])
    win = sliding_window(img, 2)
    assert win.tolist() == [[[[1, 2, 3, 4, 5, 6, 7, 8]]]]
    ternary = np.array([[1, 0, -1, 1], [0, -1, 0, 1]])
    # c0: 1*1 + 0*3 - 1*5 + 1*7 = 3; c1: -4 + 8 = 4
    assert depthwise_int(win, ternary).tolist() == [[[[3, 4]]]]
    pow2 = np.array([[2, -4, 1, 0], [-1, 8, 0, -2]])
    # c0: 2 - 12 + 5 = -5; c1: -2 + 32 - 16 = 14
    assert depthwise_int(win, pow2).tolist() == [[[[-5, 14]]]]
    int4 = np.array([[-8, 7, 0, 1], [3, -3, 2, -1]])
    # c0: -8 + 21 + 7 = 20; c1: 6 - 12 + 12 - 8 = -2
    assert depthwise_int(win, int4).tolist() == [[[[20, -2]]]]


def test_depthwise_xnor_by_hand():
    # one window of 3 taps over 2 channels (a 1-D kernel of 3, say): columns (k, c)
    win = np.array([[1, 0, 1, 1, 0, 1]])  # c0 taps 1, 1, 0; c1 taps 0, 1, 1
    w = np.array([[1, 0, 0], [0, 1, 0]])
    # c0: agree at taps 0 and 2 -> 2; c1: agree at taps 0 and 1 -> 2
    assert depthwise_xnor(win, w).tolist() == [[2, 2]]
    # bipolar dot products 2 * acc - K: c0 (+1+1-1).(+1-1-1) = 1 - 1 + 1 = 1 = 2*2 - 3
    assert (2 * depthwise_xnor(win, w) - 3).tolist() == [[1, 1]]


def test_depthwise_equals_the_block_diagonal_product():
    rng = np.random.default_rng(0)
    c, k = 5, 3
    x = rng.integers(0, 16, (2, 6, 6, c))
    w = rng.integers(-8, 8, (c, k * k))
    win = sliding_window(x, k, 1, 1, 0)
    dense = np.zeros((c, k * k * c), dtype=np.int64)  # today's lowering: a lane per zero
    for ch in range(c):
        dense[ch, np.arange(k * k) * c + ch] = w[ch]
    ref = int_matmul(win.reshape(-1, k * k * c), dense).reshape(win.shape[:-1] + (c,))
    assert np.array_equal(depthwise_int(win, w), ref)
    bits = rng.integers(0, 2, (3, k * k * c))
    wb = rng.integers(0, 2, (c, k * k))
    pm = np.array([[sum((2 * row[j * c + ch] - 1) * (2 * wb[ch, j] - 1) for j in range(k * k))
                    for ch in range(c)] for row in bits])
    assert np.array_equal(2 * depthwise_xnor(bits, wb) - k * k, pm)


def test_depthwise_refuses_wrong_windows():
    with pytest.raises(ValueError, match=r"K \* K \* C = 4 \* 2 = 8 values, not 6"):
        depthwise_int(np.zeros((1, 6), dtype=int), np.zeros((2, 4), dtype=int))


# -- 1-D windows, convolution and pooling -------------------------------------------------------


def test_sliding_window_1d_by_hand():
    x = np.array([[[1, 10], [2, 20], [3, 30], [4, 40]]])  # L = 4, C = 2
    assert sliding_window_1d(x, 3).tolist() == [[[1, 10, 2, 20, 3, 30], [2, 20, 3, 30, 4, 40]]]
    assert sliding_window_1d(x, 2, stride=2).tolist() == [[[1, 10, 2, 20], [3, 30, 4, 40]]]
    assert sliding_window_1d(x, 3, pad=1, pad_value=7).tolist() == [
        [[7, 7, 1, 10, 2, 20], [1, 10, 2, 20, 3, 30], [2, 20, 3, 30, 4, 40],
         [3, 30, 4, 40, 7, 7]]
    ]


def test_conv1d_by_hand():
    x = np.array([[[1], [2], [3], [4]]])  # L = 4, C = 1
    w = np.array([[1, 0, -1], [1, 1, 1]])  # two filters of 3 taps
    win = sliding_window_1d(x, 3)
    out = int_matmul(win.reshape(-1, 3), w).reshape(1, 2, 2)
    # filter 0: 1 - 3 = -2, 2 - 4 = -2; filter 1: 6, 9
    assert out.tolist() == [[[-2, 6], [-2, 9]]]


def test_maxpool1d_by_hand():
    x = np.array([[[1, 0], [5, 1], [2, 1], [0, 0], [3, 0]]])
    assert maxpool1d(x, 2).tolist() == [[[5, 1], [2, 1]]]
    assert maxpool1d(x, 3, 1).tolist() == [[[5, 1], [5, 1], [3, 1]]]


# -- global average pooling with Brevitas' rounding --------------------------------------------


def test_trunc_avg_pool_by_hand():
    # a 2x2 image, one channel, sums 13 and 14 and -6; shift 2: 13/4 = 3.25, 14/4 = 3.5,
    # -6/4 = -1.5
    x = np.array([[[[3], [3]], [[3], [4]]], [[[3], [4]], [[3], [4]]], [[[-3], [0]], [[-3], [0]]]])
    assert trunc_avg_pool(x, 2, -8, 7, "FLOOR")[:, 0].tolist() == [3, 3, -2]
    assert trunc_avg_pool(x, 2, -8, 7, "CEIL")[:, 0].tolist() == [4, 4, -1]
    # half to even: 3.25 -> 3, 3.5 -> 4, -1.5 -> -2
    assert trunc_avg_pool(x, 2, -8, 7, "ROUND")[:, 0].tolist() == [3, 4, -2]
    assert trunc_avg_pool(x, 2, -8, 7, "ROUND_TO_ZERO")[:, 0].tolist() == [3, 3, -1]
    # clipped to UINT2 [0, 3]
    assert trunc_avg_pool(x, 2, 0, 3, "ROUND")[:, 0].tolist() == [3, 3, 0]


def test_trunc_avg_pool_matches_qonnx_trunc_in_float():
    # qonnx Trunc v2 on an exact float input: rounding(clip(S / 2^shift, lo, hi))
    rng = np.random.default_rng(1)
    x = rng.integers(0, 16, (200, 4, 4, 3))
    s = x.sum(axis=(1, 2)).astype(np.float64)
    for mode, fn in (("FLOOR", np.floor), ("ROUND", np.round), ("CEIL", np.ceil)):
        ref = fn(np.clip(s / 2**3, 0, 15))
        assert np.array_equal(trunc_avg_pool(x, 3, 0, 15, mode), ref.astype(np.int64))


def test_average_as_sum_and_thresholds_by_hand():
    # ROUND(S / 4) clipped to [0, 3] on sums S in [0, 16]: level 1 from S = 2 (0.5 -> 0 even,
    # so S = 3: 0.75 -> 1 ... S = 2 gives 0.5 -> 0), worked: S=2 -> 0, S=3 -> 1; level 2 from
    # S = 6 (1.5 -> 2); level 3 from S = 10 (2.5 -> 2 even, so S = 11: 2.75 -> 3)
    def f(s):
        return int(trunc_avg_pool(np.array([[[[s]]]]), 2, 0, 3, "ROUND")[0, 0])

    t = monotone_thresholds(f, 0, 16, 0, 3)
    assert t.tolist() == [3, 6, 11]
    sums = np.arange(17)
    assert np.array_equal(multithreshold(sums[:, None], t[None]), [[f(s)] for s in sums])


def test_monotone_thresholds_unreached_level():
    # f never reaches level 2 on [0, 5]: its threshold is hi + 1
    assert monotone_thresholds(lambda a: min(a, 1), 0, 5, 0, 2).tolist() == [1, 6]


# -- Add with exact requantization, and Concat --------------------------------------------------


def test_join_coefficients_by_hand():
    # s_a = 1/2, s_b = 3/4: p / q = 2 / 3, u = 1/4; 1/2 x_a + 3/4 x_b = 1/4 (2 x_a + 3 x_b)
    assert join_coefficients(Fraction(1, 2), Fraction(3, 4)) == (2, 3, Fraction(1, 4))
    assert join_coefficients(0.25, 0.25) == (1, 1, Fraction(1, 4))
    assert join_coefficients(0.125, 0.5) == (1, 4, Fraction(1, 8))
    # float32 scales are exact rationals: their mantissas give p and q
    sa, sb = float(np.float32(0.1)), float(np.float32(0.3))
    p, q, u = join_coefficients(sa, sb)
    assert Fraction(sa) == u * p and Fraction(sb) == u * q
    assert max(abs(p), q) < 2**24 * 2**3  # mantissas, times 2^(difference of exponents)
    with pytest.raises(ValueError, match="non-zero"):
        join_coefficients(0, 1)


def test_add_threshold_by_hand():
    # branches of scale 1/2 and 3/4; the sum requantized by ReLU and a UINT2 quantizer of scale
    # 1/2, rounding half to even: code = clip(round((x_a / 2 + 3 x_b / 4) / (1/2)), 0, 3)
    # = clip(round(acc / 2), 0, 3) with acc = 2 x_a + 3 x_b. Worked thresholds: level 1 at
    # acc = 2 (acc = 1: round(0.5) = 0), level 2 at acc = 3 (round(1.5) = 2), level 3 at acc = 6
    # (acc = 5: round(2.5) = 2)
    t = np.array([[2, 3, 6]])
    xa = np.array([0, 1, 0, 1, 3, 1, 2, -1])
    xb = np.array([0, 0, 1, 1, 1, -1, 1, 2])
    acc = 2 * xa + 3 * xb  # 0, 2, 3, 5, 9, -1, 7, 4
    assert acc.tolist() == [0, 2, 3, 5, 9, -1, 7, 4]
    got = add_threshold(xa[:, None], xb[:, None], np.array([2]), np.array([3]), t)
    assert got[:, 0].tolist() == [0, 1, 2, 2, 3, 0, 3, 2]
    # the same codes from the float arithmetic, exactly
    value = xa / 2 + 3 * xb / 4
    assert np.array_equal(got[:, 0], np.clip(np.round(value / 0.5), 0, 3))
    # and the thresholds from the monotone function of acc
    assert monotone_thresholds(lambda a: int(np.clip(np.round(a / 2), 0, 3)), -20, 20, 0, 3
                               ).tolist() == [2, 3, 6]
    assert add_threshold(xa[:, None], xb[:, None], np.array([2]), np.array([3]), None)[
        :, 0].tolist() == acc.tolist()


def test_concat_by_hand():
    a = np.array([[[1, 2]], [[3, 4]]])
    b = np.array([[[5]], [[6]]])
    assert concat(a, b).tolist() == [[[1, 2, 5]], [[3, 4, 6]]]
    with pytest.raises(ValueError, match="one shape but the last axis"):
        concat(a, np.zeros((2, 2, 1), dtype=int))


def test_simplest_join_by_hand():
    # 4 a + 6 b >= 4, 6, 12 is 2 a + 3 b >= 2, 3, 6: the same output, half the coefficients
    wa, wb, t = simplest_join(np.array([4]), np.array([6]), np.array([[4, 6, 12]]), np.arange(8),
                              np.arange(8))
    assert (wa.tolist(), wb.tolist(), t.tolist()) == ([2], [3], [[2, 3, 6]])
    # nearly equal scales 1/2 and 1/2 (1 + 2^-20): p / q = 2^20 / (2^20 + 1), so the exact join is
    # 2^20 a + (2^20 + 1) b; requantized to UINT2 at scale 1/2 it is round(a + b (1 + 2^-20)),
    # which is a + b for a, b in [0, 3] (b 2^-20 < 1/2): coefficients 1, 1, thresholds 1, 2, 3
    sa, sb = Fraction(1, 2), Fraction(1, 2) * (1 + Fraction(1, 2**20))
    p, q, u = join_coefficients(sa, sb)
    assert (p, q) == (2**20, 2**20 + 1)

    def f(acc):
        return min(3, max(0, round(acc * u / Fraction(1, 2))))

    t = monotone_thresholds(f, 0, 3 * (p + q), 0, 3)
    wa, wb, t2 = simplest_join(np.array([p]), np.array([q]), t[None], np.arange(4), np.arange(4))
    assert (wa.tolist(), wb.tolist(), t2.tolist()) == ([1], [1], [[1, 2, 3]])


def test_simplest_join_keeps_every_output():
    rng = np.random.default_rng(3)
    a, b = np.arange(-8, 8), np.arange(0, 16)
    pa, pb = np.meshgrid(a, b)
    for _ in range(20):
        p, q = (int(v) for v in rng.integers(1, 2**20, 2))
        acc = p * pa + q * pb
        t = np.sort(rng.choice(acc.reshape(-1), 15))[None]
        wa, wb, t2 = simplest_join(np.array([p]), np.array([q]), t, a, b)
        assert wa[0] <= p and wb[0] <= q
        ref = add_threshold(pa, pb, np.array([p]), np.array([q]), t[0][None])
        got = add_threshold(pa, pb, wa, wb, t2)
        assert np.array_equal(ref, got)
