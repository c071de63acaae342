# amaranth: UnusedElaboratable=no
"""The depthwise engine (issue 19): its reference against hand-worked values and a loop oracle,
then the component against the reference under random valid/ready throttling (seed in the test
id), and its cycles per window against the model, exactly."""

import numpy as np
import pytest

from lowbit.hw._util import pack_words
from lowbit.hw.dag.depthwise import DepthwiseSpec, depthwise_node
from lowbit.hw.mvtu.unit import element_shape
from lowbit.ir import BIPOLAR, DataType
from lowbit.ir.datatypes import TERNARY
from lowbit.ir.mac import MacKind
from lowbit.sim.amaranth_sim import run_stream

U2, U4, I4 = DataType.uint(2), DataType.uint(4), DataType.int(4)


def oracle(windows, weights, in_dtype, w_dtype, thresholds):
    """Loop oracle: ``windows`` (N, T * C) tap-major stored values, ``weights`` (C, T) stored."""
    n, (c, t) = len(windows), weights.shape

    def val(v, d):
        return 2 * int(v) - 1 if d is BIPOLAR else int(v)

    out = np.zeros((n, c), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            acc = sum(val(windows[b][k * c + ch], in_dtype) * val(weights[ch, k], w_dtype)
                      for k in range(t))
            if thresholds is None:
                out[b, ch] = acc
            else:
                if in_dtype is BIPOLAR and w_dtype is BIPOLAR:
                    acc = (acc + t) // 2  # the popcount of agreeing bits
                out[b, ch] = sum(acc >= thr for thr in thresholds[ch])
    return out


def test_reference_hand_worked_xnor():
    # C = 2, K = 2 (T = 4). Channel 0 kernel +1 +1 -1 -1, channel 1 all +1.
    w = np.array([[[1, 1], [0, 0]], [[1, 1], [1, 1]]])
    node = depthwise_node("dw", w, BIPOLAR, np.array([[2], [4]]), weight_dtype=BIPOLAR)
    # window taps (t0..t3) of channel 0: 1 0 0 0 -> agree at t0, t2, t3 -> popcount 3;
    # channel 1: 1 1 1 0 -> popcount 3
    x = np.array([[1, 1, 0, 1, 0, 1, 0, 0]])
    spec = DepthwiseSpec(node, pe=1)
    assert spec.accumulate(x).tolist() == [[3, 3]]
    assert spec.reference(x).tolist() == [[1, 0]]  # 3 >= 2, 3 < 4
    nothr = DepthwiseSpec(depthwise_node("dw", w, BIPOLAR, None, weight_dtype=BIPOLAR), pe=2)
    assert nothr.reference(x).tolist() == [[2, 2]]  # 2 * 3 - 4


def test_reference_hand_worked_multibit():
    # UINT2 inputs x INT4 weights, C = 3, 1-D kernel of T = 2 taps
    w = np.array([[3, -2], [-8, 7], [0, 1]])
    x = np.array([[1, 2, 3, 2, 0, 1]])  # tap 0: (1, 2, 3), tap 1: (2, 0, 1)
    spec = DepthwiseSpec(depthwise_node("dw", w, U2, None, weight_dtype=I4), pe=3)
    # channel 0: 1*3 + 2*-2 = -1; channel 1: 2*-8 + 0*7 = -16; channel 2: 3*0 + 1*1 = 1
    assert spec.reference(x).tolist() == [[-1, -16, 1]]
    assert spec.kind is MacKind.MULTIBIT


# (name, input type, weight type, C, T, PE, thresholds per channel or None)
CASES = [
    ("xnor", BIPOLAR, BIPOLAR, 4, 9, 2, 1),
    ("xnor-pe1-scores", BIPOLAR, BIPOLAR, 3, 4, 1, None),
    ("addsub", U4, BIPOLAR, 4, 9, 4, 3),
    ("ternary-uint", U2, TERNARY, 6, 4, 3, 3),
    ("ternary-bipolar", BIPOLAR, TERNARY, 4, 9, 2, 1),
    ("shift", U2, DataType.pow2(3), 4, 3, 2, 3),
    ("multibit-w4a4", U4, I4, 8, 9, 2, 15),
    ("multibit-int-in", I4, I4, 4, 4, 4, None),
    ("multibit-t1", U4, I4, 4, 1, 2, 3),
]


def _case(name, in_dt, w_dt, c, t, pe, n_thr, seed):
    rng = np.random.default_rng(seed)
    w = w_dt.sample(rng, (c, t))
    probe = depthwise_node(name, w, in_dt, None, weight_dtype=w_dt)
    thr = None
    if n_thr is not None:
        lo, hi = (0, t) if probe.xnor else probe.acc_range
        thr = np.sort(rng.integers(lo, hi + 2, (c, n_thr)), axis=1)
    spec = DepthwiseSpec(depthwise_node(name, w, in_dt, thr, weight_dtype=w_dt), pe=pe)
    return spec, w, thr


def _beats(x, spec):
    width = element_shape(spec.node.input_dtype).width
    return [pack_words(row, width) for row in np.asarray(x).reshape(-1, spec.pe)]


def _decode(words, spec):
    shape = element_shape(spec.node.output_dtype)
    out = []
    for word in words:
        for p in range(spec.pe):
            v = (word >> (p * shape.width)) & ((1 << shape.width) - 1)
            out.append(v - (1 << shape.width) if shape.signed and v >> (shape.width - 1) else v)
    return np.array(out).reshape(-1, spec.channels)


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("case, seed", [
    pytest.param(c, s, id=f"{c[0]}-{'steady' if s is None else f'seed{s}'}")
    for c in CASES for s in (None, 5)])
def test_depthwise_unit_equals_oracle(case, seed):
    name, in_dt, w_dt, c, t, pe, n_thr = case
    spec, w, thr = _case(name, in_dt, w_dt, c, t, pe, n_thr, seed or 0)
    rng = np.random.default_rng(1 + (seed or 0))
    n = 6
    x = in_dt.sample(rng, (n, t * c))
    expected = oracle(x, w, in_dt, w_dt, thr)
    assert np.array_equal(spec.reference(x), expected)
    throttle = {} if seed is None else dict(seed=seed, valid_prob=0.6, ready_prob=0.5)
    run = run_stream(spec.create(), _beats(x, spec), n * spec.channel_folds,
                     max_cycles=40 * n * t * c, **throttle)
    got = _decode(run.outputs, spec)
    assert np.array_equal(got, expected), f"\n{got}\n!=\n{expected}"
    if seed is None:
        # one window per T * C / PE cycles: window k's first output beat comes cycles() later
        firsts = np.array(run.out_cycles)[:: spec.channel_folds]
        assert np.diff(firsts).tolist() == [spec.cycles()] * (n - 1)
        assert spec.cycles() == t * c // pe
        assert spec.cycles_per_image(vectors=n) == firsts[-1] - firsts[0] + spec.cycles()


def test_depthwise_spec_errors():
    node = depthwise_node("dw", np.ones((6, 9), dtype=int), U4, None, weight_dtype=BIPOLAR)
    with pytest.raises(ValueError,
                       match=r"^PE \(4\) must divide the channels C \(6\) of node 'dw'$"):
        DepthwiseSpec(node, pe=4)
    with pytest.raises(TypeError, match=r"^PE must be an integer, not 2\.0$"):
        DepthwiseSpec(node, pe=2.0)
    with pytest.raises(ValueError, match=r"^node 'dw': depthwise weights must be \(C, K, K\) or "
                                         r"\(C, T\), not \(9,\)$"):
        depthwise_node("dw", np.ones(9, dtype=int), U4, None)
    with pytest.raises(ValueError, match=r"^node 'dw': windows of 9 taps x 6 channels \(54 "
                                         r"elements\), not 53$"):
        DepthwiseSpec(node, pe=2).reference(np.zeros((1, 53), dtype=int))
    assert [s.pe for s in DepthwiseSpec.candidates(node, None)] == [1, 2, 3, 6]


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("in_dt, w_dt, n_thr", [
    pytest.param(BIPOLAR, BIPOLAR, 1, id="xnor"), pytest.param(U4, I4, 15, id="w4a4")])
def test_depthwise_unit_of_the_graph_node(in_dt, w_dt, n_thr):
    """A :class:`DepthwiseConv` of the graph: the spec's accumulators equal the node's, and the
    unit equals the node's reference under throttling."""
    from lowbit.ir.graph import DepthwiseConv

    rng = np.random.default_rng(11)
    c, t = 4, 9
    w = w_dt.sample(rng, (c, t))
    lo, hi = depthwise_node("p", w, in_dt, None, weight_dtype=w_dt).acc_range
    thr = np.sort(rng.integers(lo, hi + 2, (c, n_thr)), axis=1)
    out = BIPOLAR if n_thr == 1 else DataType.uint(4)
    node = DepthwiseConv("dw", in_dt, w, thr, out, w_dt)
    spec = DepthwiseSpec(node, pe=2)
    x = in_dt.sample(rng, (5, t * c))
    assert np.array_equal(spec.accumulate(x), node.accumulate(x))
    expected = node.reference(x)
    assert np.array_equal(spec.reference(x), expected)
    run = run_stream(spec.create(), _beats(x, spec), 5 * spec.channel_folds, seed=2,
                     valid_prob=0.6, ready_prob=0.5, max_cycles=5000)
    assert np.array_equal(_decode(run.outputs, spec), expected)


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("seed", [None, 8])
def test_behind_the_sliding_window_generator(seed):
    """The 2-D sliding-window generator (SIMD = PE) into the engine: a 3 x 3 depthwise convolution
    with padding over 5 x 4 images, equal to the graph's windows and DepthwiseConv node; without
    throttling one window per T * C / PE cycles once the generator runs ahead."""
    from amaranth.hdl import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out

    from lowbit.hw.stream.swg import SWGSpec
    from lowbit.ir.graph import DepthwiseConv, SlidingWindow

    rng = np.random.default_rng(21)
    h, w, c, pe = 5, 4, 4, 2
    win = SlidingWindow("win", 3, 1, 1, 0)
    wts = I4.sample(rng, (c, 9))
    lo, hi = depthwise_node("p", wts, U2, None, weight_dtype=I4).acc_range
    node = DepthwiseConv("dw", U2, wts, np.sort(rng.integers(lo, hi + 2, (c, 3)), axis=1),
                         DataType.uint(2), I4)
    swg, dw = SWGSpec(win, (h, w, c), U2, pe), DepthwiseSpec(node, pe)

    class Chain(wiring.Component):
        def __init__(self):
            self.a, self.b = swg.create(), dw.create()
            super().__init__({"i": In(stream.Signature(self.a.i.payload.shape())),
                              "o": Out(stream.Signature(self.b.o.payload.shape()))})

        def elaborate(self, platform):
            m = Module()
            m.submodules.swg, m.submodules.dw = self.a, self.b
            wiring.connect(m, wiring.flipped(self.i), self.a.i)
            wiring.connect(m, self.a.o, self.b.i)
            wiring.connect(m, self.b.o, wiring.flipped(self.o))
            return m

    n = 3
    x = U2.sample(rng, (n, h, w, c))
    expected = node.reference(win.reference(x))  # (n, OH, OW, C)
    beats = [pack_words(row, 2) for row in x.reshape(-1, pe)]
    throttle = {} if seed is None else dict(seed=seed, valid_prob=0.6, ready_prob=0.5)
    run = run_stream(Chain(), beats, n * h * w * c // pe, max_cycles=20000, **throttle)
    got = _decode(run.outputs, dw).reshape(expected.shape)
    assert np.array_equal(got, expected)
    if seed is None:
        # the engine (9 * 4 / 2 = 18 cycles per window) is slower than the generator here
        firsts = np.array(run.out_cycles)[:: dw.channel_folds]
        assert set(np.diff(firsts)[h * w:].tolist()) == {dw.cycles()}
