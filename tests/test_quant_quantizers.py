"""The zoo's quantizers on hand-worked values: each rounding and tie rule of quant/quantizers.py."""

import numpy as np
import pytest

from lowbit.ir import BIPOLAR, TERNARY, DataType
from lowbit.quant import quantizers as Q


def test_rounding_rules():
    assert Q.round_half_away([2.5, -2.5, 0.49, -0.5]).tolist() == [3, -3, 0, -1]
    assert Q.round_half_up([2.5, -2.5, 0.49, -0.5]).tolist() == [3, -2, 0, 0]
    assert Q.sign([-1.0, 0.0, 2.0, -0.0]).tolist() == [-1, 1, 1, 1]  # sign(0) = +1


def test_binary_xnor_scale():
    w = np.array([[1.0, -3.0], [0.5, 0.0]])
    q = Q.binary(w)
    assert q.dtype is BIPOLAR and q.codes.tolist() == [[1, -1], [1, 1]]
    assert q.scale.tolist() == [2.0, 0.25]  # alpha = mean|W| per row
    assert q.stored.tolist() == [[1, 0], [1, 1]]  # bits: 1 = +1
    assert Q.binary(w, per_channel=False).scale.tolist() == [1.125, 1.125]
    assert Q.binary(w, scaled=False).scale.tolist() == [1.0, 1.0]


def test_binary_connect_stochastic():
    rng = np.random.default_rng(0)
    w = np.array([-2.0, 2.0, -1.0, 1.0])
    for _ in range(20):  # hard sigmoid saturates: p = 0 or 1
        assert Q.binary_stochastic(w, rng).tolist() == [-1, 1, -1, 1]
    draws = Q.binary_stochastic(np.full(20000, 0.5), rng)  # p = 0.75
    assert set(np.unique(draws)) == {-1, 1}
    assert abs(np.mean(draws == 1) - 0.75) < 0.02


def test_twn():
    # mean|W| = 0.45, delta = 0.315: keeps -0.5 and 1.0; alpha = 0.75.
    q = Q.twn(np.array([[0.1, -0.5, 1.0, 0.2]]))
    assert q.dtype is TERNARY and q.codes.tolist() == [[0, -1, 1, 0]] and q.scale.tolist() == [0.75]
    # Strict: |w| == delta (0.7 * 10 = 7.0 exactly) is pruned.
    q = Q.twn(np.array([[7.0, 13.0]]))
    assert q.codes.tolist() == [[0, 1]] and q.scale.tolist() == [13.0]
    # Per-tensor: mean|W| = 1, delta = 0.7, alpha = (1 + 3) / 2; per row, a row keeping nothing gets 1.
    q = Q.twn(np.array([[0.0, 0.0], [1.0, -3.0]]), per_channel=False)
    assert q.codes.tolist() == [[0, 0], [1, -1]] and q.scale.tolist() == [2.0, 2.0]
    q = Q.twn(np.array([[0.0, 0.0], [1.0, -3.0]]))
    assert q.codes.tolist() == [[0, 0], [0, -1]] and q.scale.tolist() == [1.0, 3.0]


def test_ttq():
    # delta = 0.05 * max|W| = 0.05: strict, so -0.05 is zero.
    assert Q.ttq_codes(np.array([[0.04, -0.06, 1.0, -0.05]])).tolist() == [[0, -1, 1, 0]]
    assert Q.ttq_ratio(2.0, 1.0) == (2, 1, 1.0)  # 2/1 before 4/2 and 6/3 (smaller P + N)
    assert Q.ttq_ratio(1.0, 1.0) == (1, 1, 1.0)
    assert Q.ttq_ratio(1.0, 3.2) == (1, 3, 1.05)
    with pytest.raises(ValueError, match=r"^TTQ scales must be positive, not W_p=0\.0, W_n=1\.0$"):
        Q.ttq_ratio(0.0, 1.0)


def test_log_quant_rounds_in_the_log_domain():
    # POW2_3: exponents e_max - 2 .. e_max; fsr = round(log2 1.0) = 0, e_min = -2, scale 1/4.
    # 0.75: log2 = -0.415 -> e = 0 (the linear nearest power, 0.5, would differ); 0.70 < 2^-0.5 -> e = -1;
    # 0.3 -> e = -2; 0.1 -> e = -3 < e_min -> 0; -0.5 -> -2^-1; 0 -> 0.
    w = np.array([[1.0, 0.75, 0.70, 0.3, 0.1, -0.5, 0.0]])
    q = Q.log_quant(w, 3)
    assert q.dtype == DataType.pow2(3) and q.codes.tolist() == [[4, 4, 2, 1, 0, -2, 0]] and q.scale.tolist() == [0.25]
    # An explicit full-scale range clips above: e <= -1, e_min = -3.
    q = Q.log_quant(w, 3, fsr=-1)
    assert q.codes.tolist() == [[4, 4, 4, 2, 1, -4, 0]] and q.scale.tolist() == [0.125]
    # The half-way point in the log domain is 2^-0.5 (irrational): neighbours on either side.
    edge = np.sqrt(0.5)
    q = Q.log_quant(np.array([[1.0, np.nextafter(edge, 1), np.nextafter(edge, 0)]]), 3)
    assert q.codes.tolist() == [[4, 4, 2]]


def test_inq_levels_and_rule():
    # s = 1: n1 = floor(log2(4/3)) = 0; b = 5: n2 = n1 + 1 - 8 = -7 (levels 2^-7 .. 1 and 0).
    assert Q.inq_levels(1.0, 5) == (0, -7)
    w = np.array([[1.0, 0.74, 0.76, 0.3, 0.0039, 0.0040, -0.6, 0.75]])
    q = Q.inq_quantize(w, 5)
    # Boundaries: (0.5 + 1) / 2 = 0.75 (ties upwards), (0.25 + 0.5) / 2 = 0.375, (0 + 2^-7) / 2 = 2^-8.
    assert q.dtype == DataType.pow2(5) and q.scale.tolist() == [2.0 ** -7]
    assert q.codes.tolist() == [[128, 64, 128, 32, 0, 1, -64, 128]]
    # Fixed levels (as INQ keeps them once per layer): larger weights saturate at 2^n1.
    assert Q.inq_quantize(np.array([[3.0]]), 5, s=1.0).codes.tolist() == [[128]]


def test_uniform_symmetric():
    # INT3: qmax = 3, s = 1.5 / 3 = 0.5: w / s = 1, -0.5, 3, 1.5 -> 1, -1, 3, 2 (ties away from zero).
    q = Q.uniform_symmetric(np.array([[0.5, -0.25, 1.5, 0.75]]), 3)
    assert q.dtype == DataType.int(3) and q.codes.tolist() == [[1, -1, 3, 2]] and q.scale.tolist() == [0.5]
    # With a pruning mask: kept weights never quantize to 0, pruned ones always do.
    q = Q.uniform_symmetric(np.array([[0.01, 1.5, 0.2, -0.01]]), 3, mask=np.array([[1, 1, 0, 1]]))
    assert q.codes.tolist() == [[1, 3, 0, -1]]
    q = Q.uniform_symmetric(np.array([[1.0, -2.0], [0.5, 0.25]]), 8, per_channel=False)
    assert q.scale.tolist() == [2 / 127] * 2 and q.codes.tolist() == [[64, -127], [32, 16]]


def test_dorefa_weights():
    # tanh: 0, 0.7616, -0.7616, 0.2913; /(2 * 0.7616) + 0.5 = 0.5, 1, 0, 0.6912; * 3 = 1.5, 3, 0, 2.07
    # -> round half up 2, 3, 0, 2 -> 2q - 3 = 1, 3, -3, 1 (values / 3).
    q = Q.dorefa_weights(np.array([[0.0, 1.0, -1.0, 0.3]]), 2)
    assert q.dtype == DataType.int(3) and q.codes.tolist() == [[1, 3, -3, 1]] and q.scale.tolist() == [1 / 3]


def test_activation_levels():
    # floor(clip(x, 0, 1) * n + 1/2): half up, so 0.5 with n = 1 is level 1 (banker's rounding gives 0).
    assert Q.act_levels([-1.0, 0.0, 0.49, 0.5, 2.0], 1).tolist() == [0, 0, 0, 1, 1]
    assert Q.act_levels([0.0, 0.16, 0.17, 0.5, 0.83, 0.84, 1.0, 7.0], 2).tolist() == [0, 0, 1, 2, 2, 3, 3, 3]


def test_calibration_and_affine():
    s, zp = Q.calibrate([-1.0, 3.0], 2)  # min-max: s = 4 / 3, zp = round(0.75) = 1
    assert (s, zp) == (4 / 3, 1)
    assert Q.affine_quantize([-1.0, 0.0, 1.0, 3.0, 9.0], s, zp, 2).tolist() == [0, 1, 2, 3, 3]
    assert Q.calibrate([-1.0, 3.0], 4, method="maxabs") == (3 / 7, 0)
    s, zp = Q.calibrate(np.arange(1000.0), 8, method="percentile", percentile=99.9)
    assert zp == 0 and s == pytest.approx(998.001 / 255, rel=1e-12)
    # Signed: zp = round_half_away(-128 - (-4) / (8 / 255)) = round_half_away(-0.5) = -1.
    assert Q.calibrate([-4.0, 4.0], 8, signed=True) == (8 / 255, -1)
    with pytest.raises(ValueError, match=r"^method must be 'minmax', 'maxabs' or 'percentile', not 'mse'$"):
        Q.calibrate([1.0], 8, method="mse")


def test_stochastic_rounding_is_unbiased():
    rng = np.random.default_rng(1)
    r = Q.stochastic_round(np.full(40000, 2.25), rng)
    assert set(np.unique(r)) == {2.0, 3.0}
    assert abs(r.mean() - 2.25) < 0.01
    assert Q.affine_quantize([0.5], 1.0, 0, 4, rng=np.random.default_rng(2)).tolist()[0] in (0, 1)
