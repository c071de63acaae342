"""The integer oracle (``lowbit.sw_reference``) against hand-worked values and direct +-1 arithmetic.

This is the first of the two test layers (STYLE.md, Tests): the hardware tests compare the RTL with
these functions, so here they are pinned to ``ARITHMETIC.md`` sections 1, 2 and 5 by values worked
out by hand and by the definition ``x . w = sum_j x_j * w_j`` on explicit +-1 integers.
"""

import re

import numpy as np
import pytest

from lowbit.sw_reference import (WORD_BITS, argmax_lowest, binary_maxpool, bipolar_matmul, bipolar_to_bits,
                                 bits_to_bipolar, int_bipolar_matmul, int_matmul, maxpool2d, multithreshold,
                                 pack_bits, popcount, sliding_window, sum_pool, unpack_bits, xnor_popcount)

LENGTHS = [1, 2, 3, 7, 63, 64, 65, 100, 127, 128, 129, 130, 200]


def _direct_dot(x_pm: np.ndarray, w_pm: np.ndarray) -> np.ndarray:
    """``sum_j x[b, j] * w[m, j]`` by explicit integer loops over +-1 (or integer) values."""
    out = np.zeros((x_pm.shape[0], w_pm.shape[0]), dtype=np.int64)
    for b in range(x_pm.shape[0]):
        for m in range(w_pm.shape[0]):
            out[b, m] = sum(int(a) * int(c) for a, c in zip(x_pm[b], w_pm[m]))
    return out


# -- bit packing and popcount --------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 63, 64, 65, 130])
def test_pack_unpack_round_trip(n):
    rng = np.random.default_rng(n)
    bits = rng.integers(0, 2, size=(3, n), dtype=np.uint8)
    packed = pack_bits(bits)
    words = -(-n // WORD_BITS)
    assert packed.dtype == np.uint64 and packed.shape == (3, words)
    assert np.array_equal(unpack_bits(packed, n), bits)
    # The pad bits beyond n are zero.
    everything = unpack_bits(packed, words * WORD_BITS)
    assert np.array_equal(everything[:, :n], bits)
    assert not everything[:, n:].any()


@pytest.mark.parametrize("n", [1, 63, 64, 65, 130])
def test_pack_all_ones_pads_with_zeros(n):
    packed = pack_bits(np.ones(n, dtype=np.uint8))
    words = [int(w) for w in packed]
    full, rest = divmod(n, WORD_BITS)
    expected = [(1 << 64) - 1] * full + ([(1 << rest) - 1] if rest else [])
    assert words == expected


def test_pack_bits_hand_worked():
    # LSB first: bits [1, 0, 1] -> 0b101; bit 64 starts the second word.
    assert [int(w) for w in pack_bits(np.array([1, 0, 1]))] == [5]
    bits = np.zeros(66, dtype=np.uint8)
    bits[[0, 63, 65]] = 1
    assert [int(w) for w in pack_bits(bits)] == [1 | (1 << 63), 2]
    assert np.array_equal(unpack_bits(np.array([5], dtype=np.uint64), 4), [1, 0, 1, 0])


def test_popcount_known_words():
    words = np.array([0, 1, 0xFF, 0x8000000000000000, 0x5555555555555555, 0xFFFFFFFFFFFFFFFF,
                      0x0123456789ABCDEF], dtype=np.uint64)
    counts = popcount(words)
    assert counts.dtype == np.int64
    assert counts.tolist() == [0, 1, 8, 1, 32, 64, 32]


def test_bipolar_bit_mapping():
    # Bit 1 is +1, bit 0 is -1 (ARITHMETIC.md section 1).
    assert np.array_equal(bits_to_bipolar(np.array([1, 0, 1])), [1, -1, 1])
    assert np.array_equal(bipolar_to_bits(np.array([1, -1, 1])), [1, 0, 1])


# -- XNOR-popcount --------------------------------------------------------------------------------

def test_hand_worked_bipolar_dot():
    # x = [+1, +1, -1], w = [+1, -1, -1]: x . w = 1 - 1 + 1 = 1.
    # Bits x = [1, 1, 0], w = [1, 0, 0]; XNOR = [1, 0, 1], popcount 2; 2 * 2 - 3 = 1.
    x, w = np.array([[1, 1, 0]]), np.array([[1, 0, 0]])
    assert xnor_popcount(x, w).tolist() == [[2]]
    assert bipolar_matmul(x, w).tolist() == [[1]]
    # Roth et al. Eq. (13) as printed, N - 2 * popcount(XNOR), gives the negation: 3 - 4 = -1.
    assert 3 - 2 * 2 == -1 != bipolar_matmul(x, w)[0, 0]


@pytest.mark.parametrize("n", LENGTHS)
def test_xnor_popcount_identity(n):
    rng = np.random.default_rng(1000 + n)
    x_pm = rng.choice(np.array([-1, 1]), size=(5, n))
    w_pm = rng.choice(np.array([-1, 1]), size=(4, n))
    direct = x_pm.astype(np.int64) @ w_pm.astype(np.int64).T
    assert np.array_equal(direct, _direct_dot(x_pm, w_pm))
    got = bipolar_matmul(bipolar_to_bits(x_pm), bipolar_to_bits(w_pm))
    assert got.dtype == np.int64
    assert np.array_equal(got, direct)
    # The matches alone: popcount(XNOR) = number of positions where the signs agree.
    matches = (x_pm[:, None, :] == w_pm[None, :, :]).sum(axis=-1)
    assert np.array_equal(xnor_popcount(bipolar_to_bits(x_pm), bipolar_to_bits(w_pm)), matches)


@pytest.mark.parametrize("n", LENGTHS)
def test_guard_against_roth_eq13(n):
    """``N - 2 popcount(XNOR)`` (Roth et al. Eq. 13 as printed) is the negation; ours is not it."""
    rng = np.random.default_rng(2000 + n)
    x_pm = rng.choice(np.array([-1, 1]), size=(16, n))
    w_pm = rng.choice(np.array([-1, 1]), size=(8, n))
    # Add the exactly-orthogonal case (dot = 0) whenever N is even.
    if n % 2 == 0:
        w_pm[0] = x_pm[0]
        w_pm[0, : n // 2] *= -1
    xb, wb = bipolar_to_bits(x_pm), bipolar_to_bits(w_pm)
    ours = bipolar_matmul(xb, wb)
    eq13 = n - 2 * xnor_popcount(xb, wb)
    direct = x_pm @ w_pm.T
    assert np.array_equal(ours, direct)
    nonzero = direct != 0
    assert nonzero.any()
    assert (ours[nonzero] != eq13[nonzero]).all()
    assert np.array_equal(ours == eq13, direct == 0)
    if n % 2 == 0:
        assert ours[0, 0] == 0 == eq13[0, 0]


@pytest.mark.parametrize("n", [1, 3, 63, 65, 100, 130])
def test_xnor_padding_not_counted_as_matches(n):
    """Zero-padded words: a naive XNOR popcount counts the pad bits as matches; ours does not."""
    rng = np.random.default_rng(3000 + n)
    xb = rng.integers(0, 2, size=(3, n), dtype=np.uint8)
    wb = rng.integers(0, 2, size=(2, n), dtype=np.uint8)
    matches = (xb[:, None, :] == wb[None, :, :]).sum(axis=-1)
    xp, wp = pack_bits(xb), pack_bits(wb)
    naive = popcount(~(xp[:, None, :] ^ wp[None, :, :])).sum(axis=-1)
    pad = xp.shape[-1] * WORD_BITS - n
    assert pad > 0
    assert np.array_equal(naive, matches + pad)
    assert np.array_equal(xnor_popcount(xb, wb), matches)
    # The all-mismatch case: zero matches on the real bits, even though every pad bit "matches".
    assert xnor_popcount(np.ones((1, n), np.uint8), np.zeros((1, n), np.uint8)).tolist() == [[0]]
    assert bipolar_matmul(np.ones((1, n), np.uint8), np.zeros((1, n), np.uint8)).tolist() == [[-n]]


# -- integer x bipolar ----------------------------------------------------------------------------

@pytest.mark.parametrize("lo, hi", [(0, 255), (0, 3), (-128, 127), (-4, 3)])
@pytest.mark.parametrize("n", [1, 5, 64, 65])
def test_int_bipolar_matmul_direct(lo, hi, n):
    rng = np.random.default_rng(n * 1000 + hi - lo)
    x = rng.integers(lo, hi + 1, size=(4, n))
    x[0] = hi
    x[1] = lo
    wb = rng.integers(0, 2, size=(3, n), dtype=np.uint8)
    wb[0] = 1
    got = int_bipolar_matmul(x, wb)
    assert got.dtype == np.int64
    assert np.array_equal(got, _direct_dot(x, bits_to_bipolar(wb)))
    assert got[0, 0] == n * hi and got[1, 0] == n * lo


def test_int_bipolar_matmul_hand_worked():
    # x = [3, 0, 7] with w = [+1, -1, -1]: 3 - 0 - 7 = -4; with w = [-1, +1, +1]: 4.
    assert int_bipolar_matmul(np.array([[3, 0, 7]]), np.array([[1, 0, 0], [0, 1, 1]])).tolist() == [[-4, 4]]


def test_int_bipolar_matmul_no_uint_wraparound():
    # uint8 inputs must not wrap: 255 * -1 * 3 = -765.
    x = np.full((1, 3), 255, dtype=np.uint8)
    assert int_bipolar_matmul(x, np.zeros((1, 3), np.uint8)).tolist() == [[-765]]


def test_int_matmul_hand_worked():
    # x = [2, -1, 3]; w rows [1, 0, -2] -> 2 - 6 = -4, [-1, 4, 1] -> -2 - 4 + 3 = -3;
    # x = [0, 5, -4]: [1, 0, -2] -> 8, [-1, 4, 1] -> 20 - 4 = 16
    got = int_matmul(np.array([[2, -1, 3], [0, 5, -4]]), np.array([[1, 0, -2], [-1, 4, 1]]))
    assert got.tolist() == [[-4, -3], [8, 16]] and got.dtype == np.int64


def test_int_matmul_no_uint_wraparound_and_overflow_guard():
    assert int_matmul(np.full((1, 2), 200, np.uint8), np.array([[-1, -2]])).tolist() == [[-600]]
    # the bound itself (2^31 * 2^31 * 2 = 2^63) must not wrap around in int64, nor abs(-2^63)
    with pytest.raises(OverflowError, match=r"^dot products of length 2 may overflow int64 "
                                            r"\(bound 9223372036854775808\)$"):
        int_matmul(np.array([[2**31, 1]]), np.array([[2**31, 1]]))
    with pytest.raises(OverflowError, match=r"^dot products of length 1 may overflow int64"):
        int_matmul(np.array([[-2**63]]), np.array([[1]]))
    assert int_matmul(np.array([[2**30, 1]]), np.array([[2**30, 1]])).tolist() == [[2**60 + 1]]


# -- the graph's matrix-product node on bipolar operands (the XNOR score) --------------------------

def test_graph_xnor_score_hand_worked():
    """``MatMulThreshold`` with BIPOLAR inputs and weights: accumulator = matching bits, score =
    2 * matches - MW (the +-1 dot product), thresholds compare the accumulator (>=)."""
    from lowbit.ir import BIPOLAR, MatMulThreshold

    w = np.array([[1, 0, 1],    # +1 -1 +1
                  [0, 0, 1]])   # -1 -1 +1
    x = np.array([[1, 1, 0],    # +1 +1 -1: dots +1 - 1 - 1 = -1 and -1 - 1 - 1 = -3
                  [1, 0, 1]])   # +1 -1 +1: dots +1 + 1 + 1 = 3 and -1 + 1 + 1 = 1
    node = MatMulThreshold("fc", BIPOLAR, w, None)
    assert node.xnor
    # matches: row 0 vs w0 [1, 0, 0] -> 1, vs w1 [0, 0, 0] -> 0; row 1 vs w0 -> 3, vs w1 -> 2
    assert node.accumulate(x).tolist() == [[1, 0], [3, 2]]
    assert node.reference(x).tolist() == [[-1, -3], [3, 1]]
    assert node.score_range == (-3, 3)
    # one threshold per channel on the accumulator: w0 at 2 matches, w1 at 1 match
    th = MatMulThreshold("fc", BIPOLAR, w, np.array([[2], [1]]))
    assert th.reference(x).tolist() == [[0, 0], [1, 1]]


# -- sliding windows and pools ----------------------------------------------------------------------

def test_sliding_window_hand_worked_stride_and_padding():
    # 3 x 3 image, one channel, values 1..9; K 2, S 2, pad 1 with pad value 7:
    # padded 5 x 5, OH = OW = (3 + 2 - 2) // 2 + 1 = 2; windows in (ky, kx) order
    x = np.arange(1, 10).reshape(1, 3, 3, 1)
    got = sliding_window(x, 2, 2, 1, 7)
    assert got.shape == (1, 2, 2, 4)
    assert got[0].tolist() == [[[7, 7, 7, 1], [7, 7, 2, 3]],
                               [[7, 4, 7, 7], [5, 6, 8, 9]]]
    # two channels: (ky, kx, c) with c innermost; K 2, S 1, no padding on a 2 x 2 image
    x2 = np.array([[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]])
    assert sliding_window(x2, 2).tolist() == [[[[1, 2, 3, 4, 5, 6, 7, 8]]]]


def test_maxpool2d_hand_worked():
    # 3 x 5, K 2 (stride 2): the last row and column are dropped; signed values
    x = np.array([[-5, 3, -1, -2, 9],
                  [-4, -6, -3, -8, 9],
                  [9, 9, 9, 9, 9]]).reshape(1, 3, 5, 1)
    assert maxpool2d(x, 2)[0, :, :, 0].tolist() == [[3, -1]]
    # K 2, stride 1 on the first two rows: [max(-5,3,-4,-6), max(3,-1,-6,-3), max(-1,-2,-3,-8), ...]
    assert maxpool2d(x[:, :2], 2, 1)[0, :, :, 0].tolist() == [[3, 3, -1, 9]]


def test_sum_pool_hand_worked():
    # two pixels per row, two rows, two channels: channel 0 sums 1 + 2 + 3 + 4, channel 1 -1 * 4
    x = np.array([[[[1, -1], [2, -1]], [[3, -1], [4, -1]]]], dtype=np.int8)
    assert sum_pool(x).tolist() == [[10, -4]]
    assert sum_pool(np.full((1, 4, 4, 1), 255, np.uint8)).tolist() == [[16 * 255]]


# -- MultiThreshold -------------------------------------------------------------------------------

def test_multithreshold_hand_worked():
    # acc -3: none of -1, 2, 5; acc 0: only -1; acc 5: all three (5 >= 5).
    assert multithreshold(np.array([[-3, 0, 5]]), np.array([[-1, 2, 5]])).tolist() == [[0, 1, 3]]


def test_multithreshold_ge_at_equality():
    # A comparison that produces an activation uses >= (sign(0) = +1).
    t = np.array([[4]])
    assert multithreshold(np.array([[3, 4, 5]]), t).tolist() == [[0, 1, 1]]
    # Repeated thresholds count twice at and above the shared value.
    assert multithreshold(np.array([[1, 2, 3]]), np.array([[2, 2, 3]])).tolist() == [[0, 2, 3]]


def test_multithreshold_per_channel():
    acc = np.array([[0, 0, 0], [5, -5, 2]])
    t = np.array([[0, 1, 2], [-6, -5, -4], [1, 2, 3]])
    # channel 0: acc 0 -> 1, acc 5 -> 3; channel 1: 0 -> 3, -5 -> 2; channel 2: 0 -> 0, 2 -> 2.
    assert multithreshold(acc, t).tolist() == [[1, 3, 0], [3, 2, 2]]
    assert multithreshold(acc, t, out_bias=-1).tolist() == [[0, 2, -1], [2, 1, 1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multithreshold_matches_definition(seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-20, 21, size=(6, 5))
    t = np.sort(rng.integers(-21, 22, size=(5, 3)), axis=1)
    got = multithreshold(acc, t)
    for b in range(6):
        for c in range(5):
            assert got[b, c] == sum(int(acc[b, c] >= t[c, i]) for i in range(3)), (b, c)


# -- max-pool and label select --------------------------------------------------------------------

def test_binary_maxpool_hand_worked():
    bits = np.zeros((1, 2, 4, 1), dtype=np.uint8)
    bits[0, 1, 0, 0] = 1  # one +1 in the left 2x2 window; the right window is all -1
    assert binary_maxpool(bits, 2)[0, :, :, 0].tolist() == [[1, 0]]


@pytest.mark.parametrize("kernel, shape", [(1, (2, 3, 3, 2)), (2, (2, 4, 6, 3)), (3, (1, 6, 9, 4))])
def test_binary_maxpool_is_max_over_bipolar(kernel, shape):
    rng = np.random.default_rng(kernel)
    # Sparse +1s so that all-(-1) windows occur.
    bits = (rng.random(shape) < 0.15).astype(np.uint8)
    pm = bits_to_bipolar(bits)
    n, h, w, c = shape
    expected = pm.reshape(n, h // kernel, kernel, w // kernel, kernel, c).max(axis=(2, 4))
    got = binary_maxpool(bits, kernel)
    assert np.array_equal(bits_to_bipolar(got), expected)
    assert (expected == -1).any() and (expected == 1).any()


def test_argmax_lowest_ties():
    assert argmax_lowest(np.array([3, 5, 5, 1])) == 1
    assert argmax_lowest(np.array([-2, -2, -2])) == 0
    assert argmax_lowest(np.array([-9, -3, -7, -3])) == 1
    assert argmax_lowest(np.array([[0, 1, 1], [4, 0, 4], [0, 0, 7]])).tolist() == [1, 0, 2]


# -- error messages -------------------------------------------------------------------------------

def test_non_bit_values_rejected():
    with pytest.raises(ValueError, match=r"^bits must hold only 0 and 1, found values in \[0, 2\]$"):
        pack_bits(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match=r"^bits must hold only 0 and 1"):
        bits_to_bipolar(np.array([-1, 1]))
    with pytest.raises(ValueError, match=r"^x_bits must hold only 0 and 1"):
        xnor_popcount(np.array([[0, 3]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match=r"^w_bits must hold only 0 and 1"):
        int_bipolar_matmul(np.array([[0, 3]]), np.array([[-1, 1]]))
    with pytest.raises(TypeError, match=r"^bits must be an integer or boolean array, not float64$"):
        pack_bits(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"^values must hold only -1 and \+1$"):
        bipolar_to_bits(np.array([-1, 0, 1]))


def test_shape_mismatch_names_both_shapes():
    pattern = r"^x_bits \(B, N\) and w_bits \(M, N\) must agree on N, got " + re.escape("(2, 3) and (4, 5)") + "$"
    with pytest.raises(ValueError, match=pattern):
        xnor_popcount(np.zeros((2, 3), np.uint8), np.zeros((4, 5), np.uint8))
    pattern = r"^x \(B, N\) and w_bits \(M, N\) must agree on N, got " + re.escape("(2, 3) and (4, 5)") + "$"
    with pytest.raises(ValueError, match=pattern):
        int_bipolar_matmul(np.zeros((2, 3), np.int64), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"^thresholds must have shape \(C, k\) or \(1, k\) with C = 3, not \(2, 1\)$"):
        multithreshold(np.zeros((1, 3), np.int64), np.zeros((2, 1), np.int64))
