# amaranth: UnusedElaboratable=no
"""The stream fork and the adder/joiner of residual blocks (issue 19): the adder's reference
against hand-worked values, then both components against a NumPy oracle under random valid/ready
throttling on every port (seed in the test id), and their one-beat-per-cycle rate."""

import numpy as np
import pytest
from dag_sim import run_ports

from lowbit.hw._util import pack_words
from lowbit.hw.dag.branch import AddSpec, ForkSpec
from lowbit.ir import BIPOLAR, DataType

U2, U3, I3, I4 = DataType.uint(2), DataType.uint(3), DataType.int(3), DataType.int(4)


def _width(dtype):
    return 1 if dtype is BIPOLAR else dtype.bits


def _beats(x, dtype, pe):
    return [pack_words(row, _width(dtype)) for row in np.asarray(x).reshape(-1, pe)]


def _decode(words, dtype, pe):
    w, out = _width(dtype), []
    for word in words:
        for p in range(pe):
            v = (word >> (p * w)) & ((1 << w) - 1)
            out.append(v - (1 << w) if dtype.signed and dtype is not BIPOLAR and v >> (w - 1)
                       else v)
    return out


def add_oracle(a, b, a_dt, b_dt, sa, sb, thresholds, bias=0):
    def val(v, d):
        return 2 * int(v) - 1 if d is BIPOLAR else int(v)

    c_all = a.shape[-1]
    sa, sb = np.broadcast_to(sa, (c_all,)), np.broadcast_to(sb, (c_all,))
    out = []
    for row_a, row_b in zip(a, b):
        r = []
        for c, (x, y) in enumerate(zip(row_a, row_b)):
            acc = sa[c] * val(x, a_dt) + sb[c] * val(y, b_dt)
            r.append(acc if thresholds is None else bias + sum(acc >= t for t in thresholds[c]))
        out.append(r)
    return np.array(out)


def test_add_reference_hand_worked():
    # C = 2: a UINT2, b INT3, acc = 2 * a + b; thresholds give UINT2 codes
    spec = AddSpec(U2, I3, 2, 1, np.array([[0, 3, 6], [-2, 0, 2]]), scale_a=2)
    a = np.array([[1, 3], [0, 0]])
    b = np.array([[1, -4], [-1, 3]])
    # pixel 0: 2 + 1 = 3 -> >= 0, >= 3 -> 2; 6 - 4 = 2 -> >= -2, 0, 2 -> 3
    # pixel 1: -1 -> 0; 3 -> 3
    assert spec.accumulate(a, b).tolist() == [[3, 2], [-1, 3]]
    assert spec.reference(a, b).tolist() == [[2, 3], [0, 3]]
    assert spec.acc_range == (-4, 9)
    signed_out = AddSpec(U2, I3, 2, 2, np.array([[0, 3, 6], [-2, 0, 2]]), scale_a=2,
                         output_dtype=DataType.int(2))
    assert signed_out.reference(a, b).tolist() == [[0, 1], [-2, 1]]
    # bipolar + bipolar without thresholds: values -1 / +1
    assert AddSpec(BIPOLAR, BIPOLAR, 2, 2).reference(np.array([[1, 0]]),
                                                     np.array([[1, 1]])).tolist() == [[2, 0]]


ADD_CASES = [
    # (name, a, b, C, PE, scale_a, scale_b, thresholds per channel or None, output dtype)
    ("uint-int-thr", U2, I3, 6, 2, 2, 1, 3, None),
    ("int4-codes", I4, I4, 4, 4, 1, -3, 3, DataType.int(2)),
    ("bipolar-uint", BIPOLAR, U3, 4, 1, 3, 1, 1, None),
    ("sum-only", U3, I3, 4, 2, 1, 1, None, None),
    ("per-channel-scales", U3, I3, 6, 2, np.array([1, 2, 3, -1, 4, 2]),
     np.array([5, 1, 1, 2, -3, 1]), 3, None),
    ("per-channel-sum", BIPOLAR, I4, 4, 4, np.array([2, 1, 1, 3]), 1, None, None),
]


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("case, seed", [
    pytest.param(c, s, id=f"{c[0]}-{'steady' if s is None else f'seed{s}'}")
    for c in ADD_CASES for s in (None, 3, 4)])
def test_add_unit_equals_oracle(case, seed):
    name, a_dt, b_dt, c, pe, sa, sb, n_thr, out_dt = case
    rng = np.random.default_rng([seed or 0, c])
    probe = AddSpec(a_dt, b_dt, c, pe, scale_a=sa, scale_b=sb)
    thr = None
    if n_thr is not None:
        lo, hi = probe.acc_range
        thr = np.sort(rng.integers(lo, hi + 2, (c, n_thr)), axis=1)
    spec = AddSpec(a_dt, b_dt, c, pe, thr, sa, sb, out_dt, name=name)
    n = 8
    a, b = a_dt.sample(rng, (n, c)), b_dt.sample(rng, (n, c))
    bias = spec.out_bias
    expected = add_oracle(a, b, a_dt, b_dt, sa, sb, thr, bias)
    assert np.array_equal(spec.reference(a, b), expected)
    throttle = {} if seed is None else dict(seed=seed, valid_prob=0.6, ready_prob=0.5)
    got = run_ports(spec.create(), {"a": _beats(a, a_dt, pe), "b": _beats(b, b_dt, pe)},
                    {"o": n * c // pe}, **throttle)
    words, cycles = got["o"]
    assert np.array_equal(np.array(_decode(words, spec.out_dtype, pe)).reshape(n, c), expected)
    if seed is None:
        assert np.diff(cycles).tolist() == [1] * (len(cycles) - 1)  # one beat per cycle
        assert spec.cycles(n) == len(cycles)


@pytest.mark.amaranth_sim
def test_add_unit_of_the_graph_node():
    """The graph's :class:`Add` node (per-channel ``wa``, ``wb``, one shared threshold set): the
    unit equals the node's reference under throttling."""
    from lowbit.ir.graph import Add

    rng = np.random.default_rng(4)
    c = 4
    wa, wb = np.array([1, 2, 1, 3]), np.array([2, 1, 1, 1])
    probe = AddSpec(U3, I3, c, 2, scale_a=wa, scale_b=wb)
    lo, hi = probe.acc_range
    node = Add("join", (U3, I3), wa, wb, np.sort(rng.integers(lo, hi + 2, (1, 3)), axis=1),
               DataType.uint(2))
    spec = AddSpec.from_node(node, 2)
    a, b = U3.sample(rng, (6, c)), I3.sample(rng, (6, c))
    expected = node.reference(a, b)
    assert np.array_equal(spec.reference(a, b), expected)
    got = run_ports(spec.create(), {"a": _beats(a, U3, 2), "b": _beats(b, I3, 2)}, {"o": 12},
                    seed=6, valid_prob=0.6, ready_prob=0.5)
    assert np.array_equal(np.array(_decode(got["o"][0], spec.out_dtype, 2)).reshape(6, c),
                          expected)


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_fork_each_consumer_stalls_on_its_own(seed):
    spec = ForkSpec(I4, 2)
    rng = np.random.default_rng(seed or 0)
    x = I4.sample(rng, (20, 2))
    beats = _beats(x, I4, 2)
    throttle = {} if seed is None else dict(seed=seed, valid_prob=0.7, ready_prob=0.4)
    got = run_ports(spec.create(), {"i": beats}, {"a": len(beats), "b": len(beats)}, **throttle)
    assert got["a"][0] == beats and got["b"][0] == beats
    if seed is None:
        assert got["a"][1] == got["b"][1] == list(range(1, len(beats) + 1))


@pytest.mark.amaranth_sim
def test_fork_a_stalled_consumer_holds_one_beat():
    """With ``b`` never ready, ``a`` still takes the first beat and the fork then waits."""
    from amaranth.sim import Simulator

    dut = ForkSpec(U2, 1).create()
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.a.ready, 1)
        ctx.set(dut.b.ready, 0)
        for k in range(5):
            ctx.set(dut.i.payload.as_value(), k)
            _, _, ready, av, bv = await ctx.tick().sample(dut.i.ready, dut.a.valid, dut.b.valid)
            seen.append((int(ready), int(av), int(bv)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # cycle 0: both registers empty, the beat goes in; from cycle 1 b holds it and i waits
    assert seen == [(1, 0, 0), (0, 1, 1), (0, 0, 1), (0, 0, 1), (0, 0, 1)]


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(channels=6, pe=4), ValueError, r"^PE \(4\) must divide the channels C \(6\) of add$"),
    (dict(channels=4, pe=2, thresholds=np.zeros((4, 2), dtype=int)), ValueError,
     r"^add: a k-bit output needs 2\^k - 1 thresholds, not 2$"),
    (dict(channels=2, pe=2, thresholds=np.array([[99], [0]])), ValueError,
     r"^add: thresholds must lie in the sum's range \[-4, 11\], found \[0, 99\]$"),
    (dict(channels=2, pe=2, scale_a=1.5), TypeError,
     r"^add: scale_a must be an integer, not 1\.5$"),
])
def test_add_spec_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        AddSpec(U3, I3, **kwargs)


def test_fork_spec_errors():
    with pytest.raises(ValueError, match=r"^SIMD must be a positive integer, not 0$"):
        ForkSpec(U2, 0)
    with pytest.raises(TypeError, match=r"^dtype must be a BIPOLAR, UINT or INT DataType, not 3$"):
        ForkSpec(3, 1)
