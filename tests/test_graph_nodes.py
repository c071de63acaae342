"""The generalised integer graph: weight types, convolution windows, pooling, persistence."""

import numpy as np
import pytest

from lowbit.ir import (BIPOLAR, TERNARY, DataType, GlobalAccPool, IntegerGraph, MatMulThreshold, MaxPool,
                       SlidingWindow)
from lowbit.ir.graph import values
from lowbit.sw_reference import maxpool2d, sliding_window


def test_datatype_names_round_trip():
    for name in ("BIPOLAR", "TERNARY", "UINT3", "INT8", "POW2_4"):
        assert DataType.parse(name).name == name
    assert DataType.pow2(4).max == 64 and DataType.pow2(4).min == -64
    assert DataType.pow2(4).contains([0, 1, -2, 64]) and not DataType.pow2(4).contains([3])
    with pytest.raises(ValueError, match="POW2_<k>"):
        DataType.parse("POW3")


def test_weight_types_are_checked():
    with pytest.raises(ValueError, match="node 'a': weights must be values of TERNARY"):
        MatMulThreshold("a", DataType.uint(2), np.array([[2, 0]]), None, weight_dtype=TERNARY)
    with pytest.raises(ValueError, match=r"0 or \+-2\^j"):
        MatMulThreshold("b", DataType.uint(2), np.array([[3, 0]]), None, weight_dtype=DataType.pow2(3))


def test_accumulator_ranges_by_operand_types():
    w = np.array([[1, -1, 0]])
    assert MatMulThreshold("t", DataType.uint(2), w, None, weight_dtype=TERNARY).acc_range == (-9, 9)
    assert MatMulThreshold("t", BIPOLAR, w, None, weight_dtype=TERNARY).acc_range == (-3, 3)
    assert MatMulThreshold("i", DataType.int(4), w, None, weight_dtype=DataType.int(2)).acc_range == (-42, 48)  # 3 * [-14, 16]
    assert MatMulThreshold("x", BIPOLAR, np.array([[1, 0, 1]]), None).acc_range == (0, 3)


def test_bipolar_inputs_with_ternary_weights_match_the_bit_plane_formula(rng):
    """ARITHMETIC.md 3: sum = 2 * popcount(nz & XNOR(bx, pos)) - popcount(nz)."""
    w = rng.integers(-1, 2, (5, 37))
    x = rng.integers(0, 2, (9, 37))
    node = MatMulThreshold("t", BIPOLAR, w, None, weight_dtype=TERNARY)
    nz, pos = (w != 0), (w > 0)
    formula = np.array([[2 * np.sum(nz[m] & (xb == pos[m])) - nz[m].sum() for m in range(5)] for xb in x])
    assert (node.reference(x) == formula).all()


def test_sliding_window_matches_a_direct_convolution(rng):
    x = rng.integers(0, 4, (2, 6, 5, 3))
    w = rng.integers(-2, 2, (4, 3, 3, 3))  # (OC, ky, kx, IC)
    win = sliding_window(x, 3, stride=2, pad=1, pad_value=0)
    got = win @ w.reshape(4, -1).T
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros((2, 3, 3, 4), dtype=np.int64)
    for oy in range(3):
        for ox in range(3):
            patch = xp[:, 2 * oy:2 * oy + 3, 2 * ox:2 * ox + 3, :]
            ref[:, oy, ox, :] = np.einsum("byxc,oyxc->bo", patch, w)
    assert (got == ref).all()


def test_maxpool_on_bits_is_or(rng):
    b = rng.integers(0, 2, (2, 4, 6, 3))
    got = maxpool2d(b, 2)
    assert (got == (b[:, 0::2, 0::2] | b[:, 1::2, 0::2] | b[:, 0::2, 1::2] | b[:, 1::2, 1::2])).all()


def _conv_graph(rng):
    c0 = MatMulThreshold("conv0", DataType.uint(8), rng.integers(0, 2, (4, 27)),
                         np.sort(rng.integers(-300, 300, (4, 1)), axis=1))
    t1 = np.sort(rng.integers(-10, 10, (6, 3)), axis=1)
    c1 = MatMulThreshold("conv1", BIPOLAR, rng.integers(-1, 2, (6, 36)), t1, DataType.uint(2), weight_dtype=TERNARY)
    fc = MatMulThreshold("fc", DataType.uint(2), rng.integers(-4, 5, (3, 6 * 2 * 2)).astype(np.int64) * 0
                         + rng.choice([0, 1, -2, 4], (3, 24)), None, weight_dtype=DataType.pow2(4))
    nodes = (SlidingWindow("swg0", 3), c0, MaxPool("pool0", 2), SlidingWindow("swg1", 3, pad=1), c1, fc)
    return IntegerGraph(DataType.uint(8), nodes, (6, 6, 3))


def test_conv_graph_shapes_trace_and_persistence(rng, tmp_path):
    g = _conv_graph(rng)
    assert [g.output_shape(i) for i in range(len(g.nodes))] == [
        (4, 4, 27), (4, 4, 4), (2, 2, 4), (2, 2, 36), (2, 2, 6), (3,)]
    x = rng.integers(0, 256, (5, 6 * 6 * 3))
    trace = g.trace(x)
    # The first convolution by hand, on values.
    win = sliding_window(x.reshape(5, 6, 6, 3), 3)
    acc = win @ values(g.nodes[1].weights, BIPOLAR).T
    assert (trace[1] == (acc >= g.nodes[1].thresholds[:, 0]).astype(int)).all()
    path = g.save(tmp_path / "conv.npz")
    back = IntegerGraph.load(path)
    assert [type(n).__name__ for n in back.nodes] == [type(n).__name__ for n in g.nodes]
    assert back.input_shape == (6, 6, 3) and back.nodes[4].weight_dtype == TERNARY
    assert (back.scores(x) == g.scores(x)).all()


def test_graph_errors_name_the_node(rng):
    fc = MatMulThreshold("fc", BIPOLAR, rng.integers(0, 2, (3, 10)), None)
    with pytest.raises(ValueError, match="node 'pool': max-pool needs BIPOLAR or UINT inputs"):
        IntegerGraph(DataType.int(4), (MaxPool("pool", 2), fc), (4, 4, 2))
    with pytest.raises(ValueError, match="node 'fc': MW is 10"):
        IntegerGraph(BIPOLAR, (MaxPool("pool", 2), fc), (4, 4, 2))
    with pytest.raises(ValueError, match="needs an input_shape"):
        IntegerGraph(BIPOLAR, (MaxPool("pool", 2), fc))


def test_global_acc_pool(rng):
    fc = MatMulThreshold("fc", DataType.uint(6), rng.integers(-1, 2, (2, 3)), None, weight_dtype=TERNARY)
    g = IntegerGraph(DataType.uint(3), (GlobalAccPool("gap", DataType.uint(3)), fc), (3, 3, 3))
    x = rng.integers(0, 8, (4, 27))
    assert (g.trace(x)[0] == x.reshape(4, 9, 3).sum(axis=1)).all()
