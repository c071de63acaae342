# amaranth: UnusedElaboratable=no
"""The branch FIFO of a residual block (issue 19): fork -> a branch of latency L -> join, and the
shortcut through the FIFO block, in the Amaranth simulator. At the model's minimum depth
(:func:`lowbit.mapping.branch_fifo.min_branch_fifo_depth`) the block runs at the source's rate; at
every smaller depth the measured steady-state throughput (beats per cycle, an exact fraction read
off the periodic pattern of output cycles) equals :func:`residual_throughput`, and it never
deadlocks."""

from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from lowbit.hw.dag.branch import AddSpec, ForkSpec
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.stream.fifo import FIFOSpec
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold
from lowbit.mapping.branch_fifo import (
    deadlocks,
    min_branch_fifo_depth,
    residual_cycles,
    residual_throughput,
)
from lowbit.sim.amaranth_sim import run_stream

U4 = DataType.uint(4)
LAYOUT = data.ArrayLayout(unsigned(4), 1)
N = 120


class Branch(wiring.Component):
    """A long branch: ``latency`` registers that stall together (as every lowbit unit does) while
    the last holds a beat not accepted; it passes ``x + 1``."""

    i: In(stream.Signature(LAYOUT))
    o: Out(stream.Signature(LAYOUT))

    def __init__(self, latency):
        self.latency = latency
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        v = [Signal(name=f"v{k}") for k in range(self.latency)]
        d = [Signal(4, name=f"d{k}") for k in range(self.latency)]
        stall = Signal()
        m.d.comb += [stall.eq(v[-1] & ~self.o.ready), self.i.ready.eq(~stall),
                     self.o.valid.eq(v[-1]), self.o.payload.as_value().eq(d[-1])]
        with m.If(~stall):
            m.d.sync += [v[0].eq(self.i.valid), d[0].eq(self.i.payload.as_value() + 1)]
            for k in range(1, self.latency):
                m.d.sync += [v[k].eq(v[k - 1]), d[k].eq(d[k - 1])]
        return m


class Residual(wiring.Component):
    """fork -> branch -> add.a; fork.b -> FIFO(depth) -> add.b; the branch is Branch(latency)
    (out = (x + 1) + x) or, with ``mvtu``, that unit (PE = SIMD = 1, MW = MH)."""

    def __init__(self, latency, depth, mvtu=None):
        self.parts = {
            "fork": ForkSpec(U4, 1).create(),
            "branch": Branch(latency) if mvtu is None else mvtu.create(),
            "fifo": FIFOSpec(U4, 1, depth).create(),
            "add": AddSpec(U4, U4, 1, 1).create() if mvtu is None
            else AddSpec(BIPOLAR, U4, mvtu.mh, 1).create(),
        }
        out = self.parts["add"].o.payload.shape()
        super().__init__({"i": In(stream.Signature(LAYOUT)), "o": Out(stream.Signature(out))})

    def elaborate(self, platform):
        m = Module()
        for name, part in self.parts.items():
            m.submodules[name] = part
        fork, branch, fifo, add = self.parts.values()
        wiring.connect(m, wiring.flipped(self.i), fork.i)
        wiring.connect(m, fork.a, branch.i)
        wiring.connect(m, branch.o, add.a)
        wiring.connect(m, fork.b, fifo.i)
        wiring.connect(m, fifo.o, add.b)
        wiring.connect(m, add.o, wiring.flipped(self.o))
        return m


def run(latency, depth, period=1, max_cycles=4000, mvtu=None):
    """Output values and the cycles they left at; beat ``k`` is offered from cycle ``k * period``
    until taken; the sink is always ready."""
    dut = Residual(latency, depth, mvtu)
    values, cycles = [], []

    async def bench(ctx):
        k = 0
        ctx.set(dut.o.ready, 1)
        for cycle in range(max_cycles):
            if len(values) == N:
                return
            offer = k < N and cycle >= k * period
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload.as_value(), k % 8)
            _, _, ready, valid, payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload.as_value())
            k += bool(offer and ready)
            if valid:
                values.append(int(payload))
                cycles.append(cycle)
        raise AssertionError(f"deadlock: {k} beats in, {len(values)} out in {max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    x = np.arange(N) % 8
    out = dut.parts["add"].spec.out_dtype
    if out.signed:
        values = [v - (1 << out.bits) if v >> (out.bits - 1) else v for v in values]
    if mvtu is None:
        assert values == (2 * x + 1).tolist()
    else:
        bits = mvtu.reference(x.reshape(-1, mvtu.mw)).reshape(-1)
        assert values == (2 * bits - 1 + x).tolist()
    return cycles


def measured_throughput(cycles):
    """Beats per cycle of the periodic pattern of the second half's output gaps, exactly."""
    gaps = [b - a for a, b in zip(cycles, cycles[1:])][N // 2:]
    for p in range(1, len(gaps) // 3):
        if all(gaps[k] == gaps[k + p] for k in range(len(gaps) - p)):
            return Fraction(p, sum(gaps[:p]))
    raise AssertionError(f"no periodic pattern in {gaps}")


def test_model_hand_worked():
    # L = 8: slots D + 1, L + 2 = 10 cycles per slot
    assert min_branch_fifo_depth(8) == 9
    assert residual_throughput(8, 8) == Fraction(9, 10)
    assert residual_throughput(8, 4) == Fraction(1, 2)
    assert residual_cycles(90, 8, 8) == 100
    # a FIFO of depth <= 2 passes one beat every two cycles
    assert residual_throughput(2, 2) == Fraction(1, 2) and min_branch_fifo_depth(2) == 3
    # a source of one beat every 3 cycles needs ceil(10 / 3) - 1 = 3
    assert min_branch_fifo_depth(8, period=3) == 3
    assert residual_throughput(8, 2, period=3) == Fraction(3, 10)
    with pytest.raises(ValueError, match=r"^latency must be at least 2, not 1$"):
        residual_throughput(1, 4)
    with pytest.raises(TypeError, match=r"^depth must be an integer, not 2\.5$"):
        residual_throughput(4, 2.5)
    # a branch taking 6 beats before its first: a shortcut of 4 + 1 deadlocks, 5 + 1 does not
    assert deadlocks(4, 6) and not deadlocks(5, 6)
    assert min_branch_fifo_depth(2, lead=6) == 5 and min_branch_fifo_depth(8, lead=6) == 9


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("latency, period", [
    pytest.param(lat, p, id=f"L{lat}-P{p}")
    for lat, p in [(2, 1), (3, 1), (6, 1), (9, 1), (6, 2), (9, 3)]])
def test_min_depth_full_rate_and_one_below(latency, period):
    d_min = min_branch_fifo_depth(latency, period)
    full = measured_throughput(run(latency, d_min, period))
    assert full == Fraction(1, period) == residual_throughput(latency, d_min, period)
    if d_min > 1:
        below = measured_throughput(run(latency, d_min - 1, period))
        assert below == residual_throughput(latency, d_min - 1, period) < Fraction(1, period)


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("latency", [3, 6])
def test_every_depth_matches_the_model(latency):
    """Depths 1 to D_min + 1: the measured throughput is the model's at each, no deadlock."""
    depths = range(1, min_branch_fifo_depth(latency) + 2)
    got = {d: measured_throughput(run(latency, d)) for d in depths}
    assert got == {d: residual_throughput(latency, d) for d in got}


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("vector", [4, 6])
def test_a_branch_with_a_lead_deadlocks_where_the_model_says(vector):
    """An MVTU branch takes a whole vector (``R = MW`` beats at SIMD 1) before it computes: the
    model's ``D = R - 2`` deadlocks, ``D = R - 1`` (its minimum for the lead) runs."""
    rng = np.random.default_rng(vector)
    w = rng.integers(0, 2, (vector, vector))
    node = MatMulThreshold("branch", U4, w, rng.integers(-10, 11, (vector, 1)))
    mvtu = MVTUSpec(node, pe=1, simd=1)
    lead = vector
    d_min = min_branch_fifo_depth(2, lead=lead)
    assert deadlocks(d_min - 1, lead) and not deadlocks(d_min, lead)
    if d_min - 1 >= 1:
        with pytest.raises(AssertionError, match=r"^deadlock: "):
            run(2, d_min - 1, mvtu=mvtu, max_cycles=600)
    run(2, d_min, mvtu=mvtu)


class DepthwiseResidual(wiring.Component):
    """A residual block of real units: fork -> sliding window (3 x 3, pad 1) -> depthwise engine ->
    add.a; fork.b -> FIFO(depth) -> add.b; the add requantizes the sum with its thresholds."""

    def __init__(self, swg, dw, add, depth):
        simd = swg.simd
        self.parts = {
            "fork": ForkSpec(swg.dtype, simd).create(),
            "swg": swg.create(),
            "dw": dw.create(),
            "fifo": FIFOSpec(swg.dtype, simd, depth).create(),
            "add": add.create(),
        }
        super().__init__({
            "i": In(stream.Signature(self.parts["fork"].i.payload.shape())),
            "o": Out(stream.Signature(self.parts["add"].o.payload.shape())),
        })

    def elaborate(self, platform):
        m = Module()
        for name, part in self.parts.items():
            m.submodules[name] = part
        fork, swg, dw, fifo, add = self.parts.values()
        wiring.connect(m, wiring.flipped(self.i), fork.i)
        wiring.connect(m, fork.a, swg.i)
        wiring.connect(m, swg.o, dw.i)
        wiring.connect(m, dw.o, add.a)
        wiring.connect(m, fork.b, fifo.i)
        wiring.connect(m, fifo.o, add.b)
        wiring.connect(m, add.o, wiring.flipped(self.o))
        return m


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("seed", [None, 5])
def test_depthwise_residual_block_lead_and_values(seed):
    """A depthwise residual block (MobileNet-style 3 x 3 depthwise on the branch, identity
    shortcut, Add with exact requantization) from graph nodes. The sliding window's first output
    needs two image rows (pad 1), ``R = 2 * W * C / SIMD`` beats: the model's ``deadlocks(D, R)``
    holds at ``D = R - 2`` (no progress) and not at ``D = R - 1``, where the block's outputs equal
    the graph's reference, with random throttling too."""
    from lowbit.hw.dag.branch import AddSpec as _Add
    from lowbit.hw.dag.depthwise import DepthwiseSpec
    from lowbit.hw.stream.swg import SWGSpec
    from lowbit.ir.graph import Add, DepthwiseConv, SlidingWindow

    rng = np.random.default_rng(3)
    u2 = DataType.uint(2)
    h, w, c, simd = 4, 3, 2, 1
    win = SlidingWindow("win", 3, 1, 1, 0)
    wts = DataType.int(3).sample(rng, (c, 9))
    lo, hi = -4 * 3 * 9, 3 * 3 * 9
    dw_node = DepthwiseConv("dw", u2, wts, np.sort(rng.integers(lo // 4, hi // 4, (c, 3)), axis=1),
                            u2, DataType.int(3))
    add_node = Add("add", (u2, u2), np.array([1, 2]), np.array([1, 1]),
                   np.array([[1, 3, 5], [2, 4, 6]]), u2)
    swg = SWGSpec(win, (h, w, c), u2, simd)
    dw = DepthwiseSpec(dw_node, simd)
    add = _Add.from_node(add_node, simd)
    lead = 2 * w * c // simd
    assert deadlocks(lead - 2, lead) and not deadlocks(lead - 1, lead)

    n = 3
    x = u2.sample(rng, (n, h, w, c))
    expected = add_node.reference(dw_node.reference(win.reference(x)), x)
    beats = [int(v) for v in x.reshape(-1)]  # SIMD 1: one element per beat
    throttle = {} if seed is None else dict(seed=seed, valid_prob=0.7, ready_prob=0.6)
    if seed is None:
        # no output at all in 2000 cycles (the block at R - 1 needs about 650 for all of them)
        with pytest.raises(RuntimeError, match=r"^simulation exceeded max_cycles \(2000\) with "
                                               r"0 of 72 outputs"):
            run_stream(DepthwiseResidual(swg, dw, add, lead - 2), beats, n * h * w * c,
                       max_cycles=2000)
    got = run_stream(DepthwiseResidual(swg, dw, add, lead - 1), beats, n * h * w * c,
                     max_cycles=20000, **throttle)
    assert np.array(got.outputs).reshape(expected.shape).tolist() == expected.tolist()


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("h, w, c, simd", [(4, 3, 2, 1), (5, 4, 2, 2), (4, 4, 1, 1)])
def test_depthwise_residual_block_cycles_per_image(h, w, c, simd):
    """The depthwise residual block reaches the bottleneck of its units' cycle models exactly
    (``max`` of the sliding window's and the engine's cycles per image) with a branch FIFO of
    ``R + 1`` beats; at ``R - 1``, the lead rule's minimum, it runs but starves (more cycles per
    image). The depth for full rate behind such a branch is not modelled yet (the branch is not a
    fixed-latency pipeline): these are measurements."""
    from lowbit.hw._util import pack_words
    from lowbit.hw.dag.branch import AddSpec as _Add
    from lowbit.hw.dag.depthwise import DepthwiseSpec
    from lowbit.hw.stream.swg import SWGSpec
    from lowbit.ir.graph import Add, DepthwiseConv, SlidingWindow

    rng = np.random.default_rng(3)
    u2 = DataType.uint(2)
    win = SlidingWindow("win", 3, 1, 1, 0)
    dw_node = DepthwiseConv("dw", u2, DataType.int(3).sample(rng, (c, 9)),
                            np.sort(rng.integers(-20, 20, (c, 3)), axis=1), u2, DataType.int(3))
    add_node = Add("add", (u2, u2), np.ones(c, dtype=int), np.ones(c, dtype=int),
                   np.array([[1, 3, 5]]), u2)
    swg, dw = SWGSpec(win, (h, w, c), u2, simd), DepthwiseSpec(dw_node, simd)
    add = _Add.from_node(add_node, simd)
    bottleneck = max(swg.cycles(), dw.cycles_per_image(h * w), add.cycles(h * w))
    lead = 2 * w * c // simd
    n, per_image = 6, h * w * c // simd
    x = u2.sample(rng, (n, h, w, c))
    beats = [pack_words(r, 2) for r in x.reshape(-1, simd)]

    def cycles_per_image(depth):
        run = run_stream(DepthwiseResidual(swg, dw, add, depth), beats, n * per_image,
                         max_cycles=20000)
        return set(np.diff(np.array(run.out_cycles)[::per_image])[-2:].tolist())

    assert cycles_per_image(lead + 1) == {bottleneck}
    (starved,) = cycles_per_image(lead - 1)
    assert starved > bottleneck
