# amaranth: UnusedElaboratable=no
"""Stream plumbing in the Amaranth simulator: the width converter, the label select, and the
stitched accelerator against the integer graph, values and steady-state cycles.

Throttled runs draw ``valid`` / ``ready`` from a seeded generator (seed in the test id) and check
values only; unthrottled runs also check the throughput exactly.
"""

import math

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from lowbit.hw._util import pack_words
from lowbit.hw.top import Accelerator, stream_format
from lowbit.hw.codec import StreamFormat, decode_result, input_beats
from lowbit.hw.stream.dwc import StreamWidthConverter
from lowbit.hw.stream.label import LabelSelect
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold
from lowbit.sim.amaranth_sim import run_stream
from lowbit.sw_reference import argmax_lowest

THROTTLE = dict(valid_prob=0.5, ready_prob=0.5)


def _elements(words, n, width, is_signed):
    """Split each beat into ``n`` elements of ``width`` bits (two's complement if signed)."""
    out = []
    for word in words:
        for k in range(n):
            v = (word >> (k * width)) & ((1 << width) - 1)
            if is_signed and v >> (width - 1):
                v -= 1 << width
            out.append(v)
    return out


def stream_through(dut, beats, n_out, max_cycles):
    """``(outputs, output cycles)``: ``beats`` into ``dut`` with ``valid`` and ``ready`` high until
    ``n_out`` outputs came out and every beat went in. One testbench drives both sides, so nothing
    is left suspended when the simulation ends (``run_stream`` stops at the last output, leaving
    its producer waiting when the block still takes input after it, e.g. a dropped row)."""
    from amaranth.sim import Simulator

    outs, cycles = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        k = 0
        for cycle in range(max_cycles):
            if k == len(beats) and len(outs) >= n_out:
                return
            ctx.set(dut.i.valid, k < len(beats))
            ctx.set(dut.i.payload.as_value(), beats[k] if k < len(beats) else 0)
            _, _, ready, valid, data = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload.as_value())
            k += bool(ready and k < len(beats))
            if valid:
                outs.append(data)
                cycles.append(cycle)
        raise AssertionError(f"{len(outs)} of {n_out} outputs, {k} of {len(beats)} inputs taken")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return outs, cycles


# -- StreamWidthConverter -------------------------------------------------------------------------

DWC_PAIRS = [(1, 4), (4, 1), (2, 3), (3, 2), (4, 4), (1, 1), (3, 5), (5, 3), (2, 6), (6, 4)]


def _dwc_run(n_in, n_out, shape, n_elements, seed, **throttle):
    rng = np.random.default_rng([seed, n_in, n_out])
    width = shape.width
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if shape.signed else (0, (1 << width) - 1)
    data = rng.integers(lo, hi + 1, size=n_elements)
    beats = [pack_words(data[k:k + n_in], width) for k in range(0, n_elements, n_in)]
    dut = StreamWidthConverter(shape, n_in=n_in, n_out=n_out)
    run = run_stream(dut, beats, n_elements // n_out, seed=seed, max_cycles=20 * n_elements + 100, **throttle)
    return data.tolist(), _elements(run.outputs, n_out, width, shape.signed), run


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("n_in, n_out, seed", [
    pytest.param(a, b, s, id=f"in{a}-out{b}-seed{s}") for a, b in DWC_PAIRS for s in (1, 2)])
def test_dwc_throttled_preserves_sequence(n_in, n_out, seed):
    shape = signed(3) if seed % 2 else unsigned(4)
    n = 4 * math.lcm(n_in, n_out) * 3
    sent, got, _ = _dwc_run(n_in, n_out, shape, n, seed, **THROTTLE)
    assert got == sent


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("n_in, n_out", [pytest.param(a, b, id=f"in{a}-out{b}") for a, b in DWC_PAIRS])
def test_dwc_steady_state_full_rate(n_in, n_out):
    """With ``valid`` and ``ready`` always high, the slower side runs at one beat per cycle."""
    lcm = math.lcm(n_in, n_out)
    n = lcm * max(12, 48 // lcm)
    sent, got, run = _dwc_run(n_in, n_out, unsigned(4), n, 0)
    assert got == sent
    # Every window of lcm elements (lcm / n_out output beats) takes lcm / min(n_in, n_out) cycles.
    beats_per_window = lcm // n_out
    cycles_per_window = lcm // min(n_in, n_out)
    cyc = np.array(run.out_cycles)
    warm = 2 * beats_per_window
    windows = cyc[warm + beats_per_window:] - cyc[warm:-beats_per_window]
    assert len(windows) >= 4
    assert windows.tolist() == [cycles_per_window] * len(windows), \
        f"DWC {n_in}->{n_out}: output beats at cycles {run.out_cycles}"


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(n_in=0, n_out=2), r"^n_in must be a positive integer, not 0$"),
    (dict(n_in=2, n_out=1.0), r"^n_out must be a positive integer, not 1\.0$"),
])
def test_dwc_rejects_bad_widths(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        StreamWidthConverter(unsigned(4), **kwargs)


# -- LabelSelect ----------------------------------------------------------------------------------

CLASSES, SCORE_BITS = 10, 5


def _label_scores(seed):
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (SCORE_BITS - 1)), (1 << (SCORE_BITS - 1)) - 1
    s = rng.integers(-3, 4, size=(9, CLASSES))   # a narrow range: many ties
    s[0] = 2                                       # all equal: label 0
    s[1] = lo
    s[1, -1] = lo + 1                              # unique maximum at the last class
    s[2] = rng.integers(lo, hi + 1, size=CLASSES)
    s[2, 4] = s[2, 8] = hi                         # tie at the top of the range: label 4
    s[3] = lo                                      # all at the bottom: label 0
    s[4, :] = -1
    s[4, 3] = s[4, 7] = 0                          # tie across beats: label 3
    return s


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("pe, seed", [
    pytest.param(pe, seed, id=f"pe{pe}-{'steady' if seed is None else f'seed{seed}'}")
    for pe in (1, 2, 5, 10) for seed in (None, 7)])
def test_label_select(pe, seed):
    scores = _label_scores(pe)
    dut = LabelSelect(signed(SCORE_BITS), classes=CLASSES, pe=pe)
    beats = [pack_words(row[k * pe:(k + 1) * pe], SCORE_BITS) for row in scores for k in range(CLASSES // pe)]
    throttle = {} if seed is None else dict(seed=seed, **THROTTLE)
    run = run_stream(dut, beats, len(scores), max_cycles=20 * len(beats) + 100, **throttle)
    fmt = StreamFormat(input_size=CLASSES, simd=1, in_bits=1, classes=CLASSES, score_bits=SCORE_BITS)
    decoded = [decode_result(fmt, w) for w in run.outputs]
    labels = np.array([lab for lab, _ in decoded])
    got_scores = np.array([sc for _, sc in decoded])
    assert np.array_equal(got_scores, scores), f"scores echoed wrongly:\n{got_scores}\n!=\n{scores}"
    expected = argmax_lowest(scores)
    assert expected[:5].tolist() == [0, 9, 4, 0, 3]
    for b, (g, e) in enumerate(zip(labels, expected)):
        assert g == e, f"image {b}: label {g} != argmax_lowest {e} for scores {scores[b].tolist()}"
    if seed is None:
        # One result per CLASSES / PE input beats.
        assert np.diff(run.out_cycles).tolist() == [CLASSES // pe] * (len(scores) - 1)


def test_label_select_rejects_pe_not_dividing_classes():
    with pytest.raises(ValueError, match=r"^PE \(3\) must divide classes \(10\)$"):
        LabelSelect(signed(SCORE_BITS), classes=CLASSES, pe=3)


# -- the stitched accelerator ---------------------------------------------------------------------

def _random_graph(rng, sizes, in_dtype):
    """Random bit weights; one threshold per channel from [lo, hi + 1] with both extremes present."""
    nodes, dtype = [], in_dtype
    for k, (mw, mh) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(0, 2, size=(mh, mw))
        probe = MatMulThreshold(f"fc{k}", dtype, w, None)
        if k == len(sizes) - 2:
            nodes.append(probe)
            break
        lo, hi = probe.acc_range
        t = rng.integers(lo, hi + 2, size=(mh, 1))
        t[0, 0], t[-1, 0] = lo, hi + 1
        nodes.append(MatMulThreshold(f"fc{k}", dtype, w, t))
        dtype = BIPOLAR
    return IntegerGraph(in_dtype, tuple(nodes))


# name -> (layer sizes, input type, [(PE, SIMD) per layer])
ACCEL_CONFIGS = {
    # DWCs 2 -> 4 and 3 -> 6; bottleneck fc0 (4 * 4 = 16 cycles).
    "dwc-2to4-3to6": ((12, 8, 6, 4), DataType.uint(5), [(2, 3), (3, 4), (2, 6)]),
    # No DWC (PE == next SIMD); bipolar input.
    "no-dwc": ((12, 8, 6, 4), BIPOLAR, [(4, 4), (3, 4), (4, 3)]),
    # fc1 (SIMD 2, NF 1) is the bottleneck at 6 cycles and needs one beat per cycle from a 3 -> 2 DWC.
    "dwc-3to2-full-rate": ((8, 12, 6, 4), DataType.uint(3), [(3, 8), (6, 2), (2, 3)]),
    # fc0 (PE 2, SF 1) is the bottleneck at 6 cycles, emitting a beat per cycle into a 2 -> 3 DWC.
    "dwc-2to3-full-rate": ((8, 12, 6, 4), DataType.int(3), [(2, 8), (6, 3), (4, 6)]),
}


def _accel_case(name):
    sizes, in_dtype, folding = ACCEL_CONFIGS[name]
    rng = np.random.default_rng(list(ACCEL_CONFIGS).index(name))
    graph = _random_graph(rng, sizes, in_dtype)
    specs = [MVTUSpec(node, pe=pe, simd=simd) for node, (pe, simd) in zip(graph.nodes, folding)]
    lo, hi = (0, 1) if in_dtype is BIPOLAR else (in_dtype.min, in_dtype.max)
    x = rng.integers(lo, hi + 1, size=(8, sizes[0]))
    x[0], x[1] = hi, lo
    return graph, specs, x


def _accel_run(specs, x, **throttle):
    acc = Accelerator(specs)
    fmt = stream_format(acc)
    beats = [b for image in input_beats(fmt, x) for b in image]
    bound = 20 * len(x) * sum(s.cycles() + s.synapse_folds + s.neuron_folds for s in specs) + 200
    run = run_stream(acc, beats, len(x), max_cycles=bound, **throttle)
    decoded = [decode_result(fmt, w) for w in run.outputs]
    return np.array([lab for lab, _ in decoded]), np.array([s for _, s in decoded]), run


def _assert_accel_values(graph, x, labels, scores):
    ref = graph.scores(x)
    bad = np.argwhere(scores != ref)
    if len(bad):
        b, j = bad[0]
        raise AssertionError(f"image {b} score {j}: hardware {scores[b, j]} != reference {ref[b, j]}")
    assert np.array_equal(labels, graph.predict(x)), f"labels {labels} != {graph.predict(x)}"


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("name", list(ACCEL_CONFIGS))
def test_accelerator_steady_state(name):
    graph, specs, x = _accel_case(name)
    labels, scores, run = _accel_run(specs, x)
    _assert_accel_values(graph, x, labels, scores)
    bottleneck = max(s.cycles() for s in specs)
    # Steady state: every image after the first leaves exactly `bottleneck` cycles after the previous.
    assert np.diff(run.out_cycles).tolist() == [bottleneck] * (len(x) - 1), \
        f"{name}: results at cycles {run.out_cycles}, layer cycles {[s.cycles() for s in specs]}"


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("name, seed", [
    pytest.param(n, s, id=f"{n}-seed{s}") for n in ACCEL_CONFIGS for s in (11, 12)])
def test_accelerator_throttled(name, seed):
    graph, specs, x = _accel_case(name)
    labels, scores, _ = _accel_run(specs, x, seed=seed, **THROTTLE)
    _assert_accel_values(graph, x, labels, scores)


# -- SlidingWindowGenerator: steady-state cycles ---------------------------------------------------

# (H, W, C), K, S, pad, SIMD; the old model max(input beats, output beats) in the comment
SWG_CYCLE_CASES = [
    ((6, 5, 6), 3, 2, 0, 6),   # stride 2, odd W: 41 (old 36)
    ((7, 7, 4), 2, 2, 0, 2),   # stride 2, odd, a dropped row: 108 (old 98)
    ((6, 6, 2), 2, 2, 0, 1),   # stride 2, even: 72
    ((8, 8, 1), 3, 2, 1, 1),   # stride 2, even, padding: 144
    ((7, 7, 2), 3, 2, 1, 1),   # stride 2, odd, padding: 288
    ((9, 9, 1), 3, 3, 0, 1),   # stride 3 = K: the input dominates, 81
    ((7, 6, 2), 3, 3, 0, 2),   # stride 3, odd x even: 48 (old 42)
    ((4, 7, 3), 2, 3, 0, 1),   # stride 3 > K: 87 (old 84)
    ((8, 7, 2), 3, 3, 1, 2),   # stride 3, padding: 81
    ((5, 7, 4), 3, 4, 0, 2),   # stride 4 > K: 78 (old 70)
    ((5, 5, 1), 3, 1, 1, 1),   # stride 1, padding: 225
]


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("shape, k, s, p, simd", [
    pytest.param(*c, id="x".join(map(str, c[0])) + f"-k{c[1]}s{c[2]}p{c[3]}-simd{c[4]}")
    for c in SWG_CYCLE_CASES])
def test_swg_steady_cycles_equal_the_model(shape, k, s, p, simd):
    """Four images back to back, ``valid`` and ``ready`` high: every image after the first ends
    exactly ``spec.cycles()`` cycles after the previous one (and the windows are the reference's)."""
    from lowbit.hw.stream.swg import SWGSpec
    from lowbit.ir.graph import SlidingWindow

    u2 = DataType.uint(2)
    spec = SWGSpec(SlidingWindow("s", k, s, p, 3), shape, u2, simd)
    x = np.random.default_rng(sum(shape) + k).integers(0, 4, (4, *shape))
    beats = [pack_words(row, 2) for row in x.reshape(-1, simd)]
    per = spec.out_beats
    outs, cycles = stream_through(spec.create(), beats, 4 * per, 40 * len(beats) + 4 * per)
    assert _elements(outs, simd, 2, False) == spec.reference(x).reshape(-1).tolist()
    ends = [cycles[(i + 1) * per - 1] for i in range(4)]
    assert np.diff(ends).tolist() == [spec.cycles()] * 3, (ends, spec.cycles())


# -- StreamFIFO: capacity ---------------------------------------------------------------------------

@pytest.mark.amaranth_sim
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_fifo_holds_exactly_depth_beats_with_the_output_stalled(depth):
    """``ready`` low at the output for 4 * depth + 8 cycles: the FIFO accepts exactly ``depth`` beats
    (not one less, not one more); then it gives them back in order."""
    from amaranth.sim import Simulator
    from lowbit.hw.stream.fifo import FIFOSpec

    dut = FIFOSpec(DataType.uint(3), 2, depth).create()
    beats = [(3 * k + 1) % 64 for k in range(depth + 2)]
    taken, out = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        for _ in range(4 * depth + 8):
            ctx.set(dut.i.payload.as_value(), beats[len(taken)])
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            if ready:
                taken.append(beats[len(taken)])
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(2 * depth + 4):
            _, _, valid, data = await ctx.tick().sample(dut.o.valid, dut.o.payload.as_value())
            if valid:
                out.append(data)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(taken) == depth
    assert out == beats[:depth]


# -- max-pool and threshold unit: memory depths that are powers of two, folds that are not ---------

def _block_run(comp, x, simd, in_bits, out_bits, out_signed, per_image):
    beats = [pack_words(row, in_bits) for row in np.asarray(x).reshape(-1, simd)]
    outs, cycles = stream_through(comp, beats, per_image * len(x), 40 * len(beats) + 200)
    ends = [cycles[(i + 1) * per_image - 1] for i in range(len(x))]
    return _elements(outs, simd, out_bits, out_signed), np.diff(ends).tolist()


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("shape, simd", [((4, 5, 2), 2), ((5, 5, 4), 2), ((6, 9, 2), 1)])
def test_maxpool_with_a_dropped_column_and_a_power_of_two_line_memory(shape, simd):
    """K = 2 on an odd width: the dropped column must not write the line memory, whose depth
    ``OW * C / SIMD`` (2, 4, 8) is a power of two, so an address past its end would wrap onto the
    partial maximum of column 0. Values and exact cycles, 3 images."""
    from lowbit.hw.stream.pool import MaxPoolSpec
    from lowbit.ir.graph import MaxPool

    u3 = DataType.uint(3)
    spec = MaxPoolSpec(MaxPool("p", 2), shape, u3, simd)
    x = np.random.default_rng(sum(shape)).integers(0, 8, (3, *shape))
    oh, ow = spec.out_dims
    got, gaps = _block_run(spec.create(), x, simd, 3, 3, False, oh * ow * shape[2] // simd)
    assert got == spec.reference(x).reshape(-1).tolist()
    assert gaps == [spec.cycles()] * 2


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("channels, pe", [(6, 2), (5, 1), (9, 3)])
def test_threshold_unit_with_folds_not_a_power_of_two(channels, pe):
    """``C / PE`` = 3, 5, 3 folds: the fold counter must wrap at the last fold, not at a power of
    two. Values and exact cycles (``C / PE`` per pixel), 4 pixels."""
    from lowbit.hw.stream.threshold import ThresholdSpec

    i6 = DataType.int(6)
    rng = np.random.default_rng(channels)
    t = np.sort(rng.integers(-20, 22, (channels, 3)), axis=1)
    spec = ThresholdSpec(t, i6, pe)
    x = rng.integers(-32, 32, (4, channels))
    got, gaps = _block_run(spec.create(), x, pe, 6, 2, False, spec.folds)
    assert got == spec.reference(x).reshape(-1).tolist()
    assert gaps == [spec.cycles()] * 3
