# amaranth: UnusedElaboratable=no
"""Pipeline registers in the engines (issue 21, timing-aware engines): the MVTU's tree and
threshold comparison, the threshold unit and the label select at every depth.

In the Amaranth simulator, against the reference: bit-exact under random ``valid``/``ready``
stalls at depths 1 and 2, and with ``valid`` and ``ready`` high the cycles per vector unchanged
and the latency exactly the spec's ``latency()`` (depth 0 included, so the formula is checked on
today's design too). Depths 3 (a register inside the compressor tree) and 4 (also the memories'
read data registered), popcount lanes only, against hand-worked latencies and register positions,
in the Amaranth simulator and on the fast Verilator path. Depths 5 and 6 (two and three registers
inside every lane's tree, :func:`lowbit.hw.fmax.popcount_cuts` / ``adder_tree_cuts``): the cut
rule against hand-worked values, every parallel MAC kind bit-exact under stalls with the spec's
latency. Depth 0 keeps today's Verilog: ``tests/test_golden.py`` pins it.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import signed

from lowbit.hw._util import pack_words
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.stream.label import (
    LabelSelect,
    LabelSelectSpec,
    _follow,
    _stage_widths,
    max_label_pipeline,
)
from lowbit.hw.stream.threshold import ThresholdSpec
from lowbit.ir import BIPOLAR, TERNARY, DataType, MatMulThreshold
from lowbit.sim.amaranth_sim import run_stream
from lowbit.sw_reference import argmax_lowest

UINT2 = DataType.uint(2)


def _elements(words, n, width, is_signed):
    out = []
    for word in words:
        for k in range(n):
            v = (word >> (k * width)) & ((1 << width) - 1)
            if is_signed and v >> (width - 1):
                v -= 1 << width
            out.append(v)
    return out


# -- MVTU -----------------------------------------------------------------------------------------

# name -> (input type, weight type, thresholds per row (None: scores), mac)
MVTU_KINDS = {
    "xnor": (BIPOLAR, BIPOLAR, 1, "parallel"),
    "addsub-scores": (DataType.uint(3), BIPOLAR, None, "parallel"),
    "ternary": (UINT2, TERNARY, 3, "parallel"),
    "multibit": (UINT2, DataType.int(3), 3, "parallel"),
    "serial": (UINT2, DataType.int(3), 3, "serial"),
    "shift": (DataType.uint(3), DataType.pow2(3), 3, "parallel"),
    "multibit-bipolar": (BIPOLAR, DataType.int(3), None, "parallel"),
}
# (MW, MH, PE, SIMD): SF 3 / NF 2, SF 1 / NF 3, SF 2 / NF 1
MVTU_SHAPES = [(12, 4, 2, 4), (6, 6, 2, 6), (8, 2, 2, 4)]


def _mvtu_case(kind, shape, seed=0):
    in_dtype, w_dtype, n_thr, mac = MVTU_KINDS[kind]
    mw, mh, pe, simd = shape
    rng = np.random.default_rng([seed, mw, mh, pe, simd, list(MVTU_KINDS).index(kind)])
    w = w_dtype.sample(rng, (mh, mw))
    probe = MatMulThreshold("fc", in_dtype, w, None, weight_dtype=w_dtype)
    if n_thr is None:
        node = probe
    else:
        lo, hi = probe.acc_range
        t = np.sort(rng.integers(lo, hi + 2, (mh, n_thr)), axis=1)
        out = BIPOLAR if n_thr == 1 else DataType.uint(n_thr.bit_length())
        node = MatMulThreshold("fc", in_dtype, w, t, out, weight_dtype=w_dtype)
    x = in_dtype.sample(rng, (6, mw))
    return MVTUSpec(node, pe=pe, simd=simd, mac=mac), x


def _mvtu_run(spec, x, **throttle):
    dut = spec.create()
    ib, ob = dut.in_shape.width, dut.out_shape.width
    sf, simd = spec.synapse_folds, spec.simd
    beats = [pack_words(row[s * simd:(s + 1) * simd], ib) for row in x for s in range(sf)]
    bound = 20 * (len(x) * (spec.cycles() + sf) + 50)
    run = run_stream(dut, beats, len(x) * spec.neuron_folds, max_cycles=bound, **throttle)
    got = _elements(run.outputs, spec.pe, ob, dut.out_shape.signed)
    return np.array(got).reshape(len(x), spec.mh), run


# every kind once, the shapes in turn
MVTU_PARAMS = [pytest.param(k, s, id=f"{k}-MW{s[0]}-MH{s[1]}-PE{s[2]}-SIMD{s[3]}")
               for k, s in zip(MVTU_KINDS, MVTU_SHAPES * 2)]


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("kind, shape", MVTU_PARAMS)
def test_mvtu_pipeline_steady_cycles_and_latency(kind, shape):
    """Cycles per vector unchanged, latency ``spec.latency()``: one more cycle per stage."""
    base, x = _mvtu_case(kind, shape)
    ref = base.reference(x)
    latencies = []
    for depth in (0, 1, 2):
        spec = dataclasses.replace(base, pipeline=depth)
        got, run = _mvtu_run(spec, x)
        assert np.array_equal(got, ref), f"pipeline {depth}: outputs differ from the reference"
        nf = spec.neuron_folds
        assert np.diff(run.out_cycles[nf - 1::nf]).tolist() == [spec.cycles()] * (len(x) - 1)
        # input beat k is taken in cycle k + 1 (valid from the start, the unit idle)
        latencies.append(run.out_cycles[0] - spec.synapse_folds)
        assert latencies[-1] == spec.latency(), f"pipeline {depth}"
    assert latencies == [latencies[0], latencies[0] + 1, latencies[0] + 2]


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("kind, shape", MVTU_PARAMS)
def test_mvtu_pipeline_bit_exact_under_stalls(kind, shape, depth):
    base, x = _mvtu_case(kind, shape, seed=depth)
    spec = dataclasses.replace(base, pipeline=depth)
    seed = 40 + depth
    got, _ = _mvtu_run(spec, x, seed=seed, valid_prob=0.5, ready_prob=0.4)
    assert np.array_equal(got, spec.reference(x))


def test_mvtu_pipeline_checked():
    spec, _ = _mvtu_case("xnor", MVTU_SHAPES[0])
    with pytest.raises(ValueError, match=r"^node 'fc': pipeline must be in \[0, 6\], not 7$"):
        dataclasses.replace(spec, pipeline=7)
    with pytest.raises(TypeError, match=r"^node 'fc': pipeline must be an integer, not True$"):
        dataclasses.replace(spec, pipeline=True)


def test_mvtu_pipeline_adds_registers_not_cycles():
    spec, _ = _mvtu_case("ternary", MVTU_SHAPES[0])
    deeper = dataclasses.replace(spec, pipeline=2)
    assert deeper.cycles() == spec.cycles()
    assert deeper.resources().ff > spec.resources().ff
    assert deeper.resources().lut == spec.resources().lut
    assert deeper.schedule_options() == {"pipeline": 2} and spec.schedule_options() == {}


# -- threshold unit -------------------------------------------------------------------------------

def _threshold_case(depth, channels=6, pe=2, seed=0):
    rng = np.random.default_rng([seed, channels, pe])
    i6 = DataType.int(6)
    t = np.sort(rng.integers(-20, 22, (channels, 3)), axis=1)
    return ThresholdSpec(t, i6, pe, pipeline=depth), rng.integers(-32, 32, (8, channels))


def _threshold_run(spec, x, **throttle):
    dut = spec.create()
    pe = spec.pe
    beats = [pack_words(row[k:k + pe], 6) for row in x for k in range(0, spec.channels, pe)]
    run = run_stream(dut, beats, len(beats), max_cycles=40 * len(beats) + 100, **throttle)
    return _elements(run.outputs, spec.pe, dut.out_shape.width, dut.out_shape.signed), run


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_threshold_unit_pipeline(depth):
    spec, x = _threshold_case(depth)
    want = spec.reference(x).reshape(-1).tolist()
    got, run = _threshold_run(spec, x)
    assert got == want
    assert np.diff(run.out_cycles).tolist() == [1] * (len(run.out_cycles) - 1)
    assert run.out_cycles[0] - 1 == spec.latency() == 1 + depth  # beat 0 taken in cycle 1
    for seed in (3,):
        got, _ = _threshold_run(spec, x, seed=seed, valid_prob=0.5, ready_prob=0.4)
        assert got == want, f"seed {seed}"


def test_threshold_pipeline_checked():
    with pytest.raises(ValueError, match=r"^threshold: pipeline must be in \[0, 2\], not -1$"):
        _threshold_case(-1)


# -- label select ---------------------------------------------------------------------------------

CLASSES, BITS = 10, 6


def _scores(seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(-3, 4, (9, CLASSES))  # a narrow range: many ties
    s[0] = 2
    s[1] = -32
    s[1, -1] = -31
    s[2, 4] = s[2, 8] = 31
    s[3, :] = -1
    s[3, 3] = s[3, 7] = 0
    return s


def _label_run(pe, pipeline, scores, **throttle):
    dut = LabelSelect(signed(BITS), classes=CLASSES, pe=pe, pipeline=pipeline)
    beats = [pack_words(r[k * pe:(k + 1) * pe], BITS) for r in scores for k in range(CLASSES // pe)]
    run = run_stream(dut, beats, len(scores), max_cycles=40 * len(beats) + 100, **throttle)
    width = dut.result_layout.size
    label_bits = (CLASSES - 1).bit_length()
    labels = [w & ((1 << label_bits) - 1) for w in run.outputs]
    echoed = [_elements([w >> label_bits], CLASSES, BITS, True) for w in run.outputs]
    assert all(w < (1 << width) for w in run.outputs)
    return labels, echoed, run


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("pe", [1, 2, 5])
def test_label_select_pipeline(pe):
    scores = _scores(pe)
    want = argmax_lowest(scores).tolist()
    base = None
    for pipeline in range(max_label_pipeline(pe) + 1):  # PE 5: up to 3 stages, one level each
        labels, echoed, run = _label_run(pe, pipeline, scores)
        assert labels == want and echoed == scores.tolist()
        assert np.diff(run.out_cycles).tolist() == [CLASSES // pe] * (len(scores) - 1)
        spec = LabelSelectSpec(CLASSES, pe, BITS, pipeline=pipeline)
        # the last beat of image 0 is taken in cycle CLASSES / PE
        assert run.out_cycles[0] - CLASSES // pe == spec.latency()
        base = run.out_cycles[0] if base is None else base
        assert run.out_cycles[0] == base + pipeline
        for seed in (5,):
            labels, echoed, _ = _label_run(pe, pipeline, scores, seed=seed, valid_prob=0.5,
                                           ready_prob=0.4)
            assert labels == want and echoed == scores.tolist(), f"seed {seed}"


def test_label_select_pipeline_checked():
    with pytest.raises(ValueError, match=r"^label select: pipeline must be in \[0, 1\] for PE 2, "
                       r"not 2$"):
        LabelSelectSpec(CLASSES, 2, BITS, pipeline=2)
    with pytest.raises(ValueError, match=r"^label select: pipeline must be in \[0, 3\] for PE 5, "
                       r"not 4$"):
        LabelSelectSpec(CLASSES, 5, BITS, pipeline=4)
    with pytest.raises(ValueError, match=r"^label select: pipeline=1 takes top_k=1, not 3$"):
        LabelSelectSpec(CLASSES, 2, BITS, top_k=3, pipeline=1)
    # hand-worked: PE 10 -> 4 tree levels; the lanes entering each stage
    assert [max_label_pipeline(pe) for pe in (1, 2, 3, 5, 8, 10)] == [1, 1, 2, 3, 3, 4]
    assert _stage_widths(10, 1) == [10]
    assert _stage_widths(10, 2) == [10, 3]  # 10 -> 5 -> 3 in the first stage
    assert _stage_widths(10, 4) == [10, 5, 3, 2]
    assert _stage_widths(5, 3) == [5, 3, 2]


def test_label_select_follows_the_last_unit():
    spec, _ = _mvtu_case("addsub-scores", MVTU_SHAPES[0])
    assert LabelSelectSpec.after(spec).pipeline == 0
    assert LabelSelectSpec.after(dataclasses.replace(spec, pipeline=2)).pipeline == 1
    deep = LabelSelectSpec.after(dataclasses.replace(spec, pipeline=4))
    assert deep.pipeline == max_label_pipeline(spec.out_elems) == 1  # PE 2: one tree level
    # PE 5: the deepest is 3, after 3 to 6
    assert [_follow(d, 5) for d in range(7)] == [0, 1, 1, 3, 3, 3, 3]


# -- whole designs --------------------------------------------------------------------------------

def _ternary_mlp():
    from lowbit.ir import IntegerGraph

    rng = np.random.default_rng(3)
    w0, w1 = rng.integers(-1, 2, (16, 32)), rng.integers(-1, 2, (10, 16))
    lo, hi = MatMulThreshold("p", UINT2, w0, None, weight_dtype=TERNARY).acc_range
    t0 = np.sort(rng.integers(lo // 4, hi // 4 + 2, (16, 3)), axis=1)
    graph = IntegerGraph(UINT2, (
        MatMulThreshold("fc0", UINT2, w0, t0, UINT2, weight_dtype=TERNARY),
        MatMulThreshold("fc1", UINT2, w1, None, weight_dtype=TERNARY)))
    return graph, rng.integers(0, 4, (60, 32))


def _mlp_schedule(depths):
    from lowbit.mapping import Schedule
    from lowbit.mapping.schedule import LayerFolding

    return Schedule("ulx3s-85f", 25.0, (LayerFolding("fc0", 4, 8, pipeline=depths[0]),
                                        LayerFolding("fc1", 5, 4, pipeline=depths[1])))


@pytest.mark.amaranth_sim
def test_whole_accelerator_latency_counted():
    """The accelerator in the Amaranth simulator: with both layers (and so the label select)
    pipelined, the same results and cycles per image, and the first result exactly the report's
    ``pipeline_latency_cycles`` later."""
    from lowbit.hw.codec import decode_result, input_beats
    from lowbit.hw.top import Accelerator, stream_format

    graph, x = _ternary_mlp()
    x = x[:6]
    first = {}
    for depths in ((0, 0), (2, 1)):
        schedule = _mlp_schedule(depths)
        acc = Accelerator(schedule.apply(graph))
        fmt = stream_format(acc)
        beats = [b for image in input_beats(fmt, x) for b in image]
        run = run_stream(acc, beats, len(x), max_cycles=5000)
        assert [decode_result(fmt, w)[0] for w in run.outputs] == graph.predict(x).tolist()
        report = schedule.report(graph)
        steady = np.diff(run.out_cycles).tolist()
        assert steady == [report["cycles_per_image"]] * (len(x) - 1)
        first[depths] = (run.out_cycles[0], report["pipeline_latency_cycles"])
    assert first[(0, 0)][1] == 0 and first[(2, 1)][1] == 2 + 1 + 1
    assert first[(2, 1)][0] - first[(0, 0)][0] == first[(2, 1)][1]


@pytest.mark.fast_sim
def test_whole_design_fast_path(tmp_path, private_verilator_cache):
    """The pipelined design's Verilog on the fast Verilator path: bit-exact under its random
    stall patterns, cycles per image as the report predicts."""
    from lowbit.flow import compile_model, verify_compiled_fast

    graph, x = _ternary_mlp()
    report = compile_model(graph, tmp_path / "out", schedule=_mlp_schedule((2, 1)))
    rep = verify_compiled_fast(tmp_path / "out", x)
    assert rep.ok, rep.mismatch
    assert rep.cycles_per_image == report.cycles_per_image


# -- depths 3 and 4: a register inside the compressor tree, then the memories' read data ---------

def _ternary_bipolar_case(seed=0):
    rng = np.random.default_rng(seed)
    w = TERNARY.sample(rng, (4, 12))
    lo, hi = MatMulThreshold("p", BIPOLAR, w, None, weight_dtype=TERNARY).acc_range
    t = np.sort(rng.integers(lo, hi + 2, (4, 1)), axis=1)
    node = MatMulThreshold("fc", BIPOLAR, w, t, BIPOLAR, weight_dtype=TERNARY)
    return MVTUSpec(node, pe=2, simd=4), BIPOLAR.sample(rng, (6, 12))


def test_popcount_cut_hand_worked():
    from lowbit.hw.fmax import popcount_cut, popcount_depth

    # 16 XNOR bits: five 3:2 counters and a lone bit give columns of 6 and 5 bits (level 1); one
    # 6:3 and one 5:3 counter leave at most two bits a column (level 2); then the adder: 3 levels,
    # the register after level 1 holds its 11 bits
    assert popcount_depth(16, 2) == (3, 5)
    assert popcount_cut(16, 2) == (1, 11)
    # 6 XNOR bits: two 3:2 counters (4 bits in columns of 2), the adder: 2 levels, cut after 1
    assert popcount_cut(6, 2) == (1, 4)
    # one bit: no counter, its input registered
    assert popcount_cut(1, 2) == (0, 1)


def test_mvtu_depth_3_latency_hand_worked():
    spec, _ = _mvtu_case("xnor", MVTU_SHAPES[0])  # SF 3: bank hand-over + 3 issues + read + output
    assert [dataclasses.replace(spec, pipeline=d).latency() for d in range(5)] == [5, 6, 7, 8, 9]
    deep = dataclasses.replace(spec, pipeline=3)
    assert deep.cycles() == spec.cycles() == 6
    # the register inside each of the PE 2 trees of SIMD 4 holds popcount_cut(4, 2)[1] == 3 bits
    assert deep.resources().ff == dataclasses.replace(spec, pipeline=2).resources().ff + 2 * 3 + 4
    assert deep.schedule_options() == {"pipeline": 3}
    # 4: the weight word (PE 2 x SIMD 4 bits) and the input word (SIMD 4 bits) registered
    deepest = dataclasses.replace(spec, pipeline=4)
    assert deepest.resources().ff == deep.resources().ff + 8 + 4 + 4


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("kind", ["xnor", "ternary-bipolar"])
def test_mvtu_depth_3_latency_and_stalls(kind):
    """Depths 3 and 4: one cycle more per stage than depth 2, exactly (the simulated first output
    against the hand-worked latency), bit-exact with random stalls."""
    if kind == "xnor":
        base, x = _mvtu_case("xnor", MVTU_SHAPES[0])
    else:
        base, x = _ternary_bipolar_case()
    ref = base.reference(x)
    firsts = []
    for depth in (2, 3, 4):
        spec = dataclasses.replace(base, pipeline=depth)
        got, run = _mvtu_run(spec, x)
        assert np.array_equal(got, ref), f"pipeline {depth}"
        nf = spec.neuron_folds
        assert np.diff(run.out_cycles[nf - 1::nf]).tolist() == [spec.cycles()] * (len(x) - 1)
        assert run.out_cycles[0] - spec.synapse_folds == spec.latency() == 3 + 2 + depth
        firsts.append(run.out_cycles[0])
        if depth > 2:
            got, _ = _mvtu_run(spec, x, seed=40 + depth, valid_prob=0.5, ready_prob=0.4)
            assert np.array_equal(got, ref), f"pipeline {depth} under stalls"
    assert firsts == [firsts[0], firsts[0] + 1, firsts[0] + 2]


def test_mvtu_depth_3_only_with_parallel_lanes():
    """Every parallel MAC kind takes 6 (up to three registers inside its popcount or adder tree);
    the bit-serial MAC at most 2."""
    for kind in ("xnor", "addsub-scores", "ternary", "multibit", "shift", "multibit-bipolar"):
        assert _mvtu_case(kind, MVTU_SHAPES[0])[0].max_pipeline == 6, kind
    assert _ternary_bipolar_case()[0].max_pipeline == 6
    spec, _ = _mvtu_case("serial", MVTU_SHAPES[0])
    assert spec.max_pipeline == 2
    with pytest.raises(ValueError, match=r"^node 'fc': pipeline 3 \(a register inside each "
                                         r"lane's tree\) needs mac='parallel'; this bit-serial "
                                         r"multibit unit takes at most 2, not 3$"):
        dataclasses.replace(spec, pipeline=3)


# adder-tree lanes: integer inputs x bipolar / ternary / INTk / power-of-two weights, and INTk
# weights on bipolar inputs
ADDER_KINDS = ["addsub-scores", "ternary", "multibit", "shift", "multibit-bipolar"]


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("kind", ADDER_KINDS)
def test_mvtu_adder_lanes_depths_3_and_4(kind):
    """Adder-tree lanes at depths 3 (a register inside each lane's adder tree) and 4 (also the
    memories' read data): one cycle more per stage than depth 2, exactly, the same cycles per
    vector, bit-exact with and without random stalls."""
    base, x = _mvtu_case(kind, MVTU_SHAPES[0])
    ref = base.reference(x)
    firsts = []
    for depth in (2, 3, 4):
        spec = dataclasses.replace(base, pipeline=depth)
        got, run = _mvtu_run(spec, x)
        assert np.array_equal(got, ref), f"pipeline {depth}"
        nf = spec.neuron_folds
        assert np.diff(run.out_cycles[nf - 1::nf]).tolist() == [spec.cycles()] * (len(x) - 1)
        assert run.out_cycles[0] - spec.synapse_folds == spec.latency() == 3 + 2 + depth
        firsts.append(run.out_cycles[0])
        if depth > 2:
            got, _ = _mvtu_run(spec, x, seed=50 + depth, valid_prob=0.5, ready_prob=0.4)
            assert np.array_equal(got, ref), f"pipeline {depth} under stalls"
    assert firsts == [firsts[0], firsts[0] + 1, firsts[0] + 2]


def test_adder_tree_cut_hand_worked():
    from lowbit.hw.fmax import adder_tree_cut

    # 8 terms of 4 bits: 3 adder levels, the register after 2 (ceil(3 / 2)) holds the 2 sums of
    # 6 bits; 5 terms: 3 levels, after 2 the sums of terms 0-3 and the lone term 4 (6 + 4 bits)
    assert adder_tree_cut(8, 4) == (2, 12)
    assert adder_tree_cut(5, 4) == (2, 10)
    # 2 terms: after the one adder; one term: the term itself registered
    assert adder_tree_cut(2, 3) == (1, 4)
    assert adder_tree_cut(1, 3) == (0, 3)


def test_mvtu_adder_lanes_registers_inside_the_tree():
    """The Verilog of an ADDSUB unit at depth 3 holds each lane's adder-tree register
    (``lane<p>_s<k>``) and the shared input sum's (``xsum_s<k>``), as many as ``adder_tree_cut``
    says: SIMD 4 terms, cut after 1 level, 2 partial sums per lane; depth 2 has none."""
    import re

    from lowbit.hw.verilog import to_verilog

    spec, _ = _mvtu_case("addsub-scores", MVTU_SHAPES[0])
    deep = to_verilog(dataclasses.replace(spec, pipeline=3).create(), "top")
    flat = to_verilog(dataclasses.replace(spec, pipeline=2).create(), "top")
    lanes = set(re.findall(r"\breg\s+(?:signed\s+)?(?:\[[^]]*\]\s*)?\\?(lane\d+_s\d+)\b", deep))
    xsum = set(re.findall(r"\breg\s+(?:signed\s+)?(?:\[[^]]*\]\s*)?\\?(xsum_s\d+)\b", deep))
    assert len(lanes) == 2 * 2 and len(xsum) == 2
    assert not re.search(r"(lane\d+|xsum)_s\d+", flat)
    assert "w_word_r" in to_verilog(dataclasses.replace(spec, pipeline=4).create(), "top")


def test_mvtu_depth_3_registers_inside_the_tree():
    """The Verilog at depth 3 holds the register stage inside each lane's popcount (named
    ``lane<p>_r<k>``), as many bits as ``popcount_cut`` says, and depth 2 none."""
    import re

    from lowbit.hw.verilog import to_verilog

    spec, _ = _mvtu_case("xnor", MVTU_SHAPES[0])
    deep = to_verilog(dataclasses.replace(spec, pipeline=3).create(), "top")
    flat = to_verilog(dataclasses.replace(spec, pipeline=2).create(), "top")
    regs = set(re.findall(r"\breg\s+(?:\[[^]]*\]\s*)?\\?(lane\d+_r\d+)\b", deep))
    assert len(regs) == 2 * 3 and not re.search(r"lane\d+_r\d+", flat)
    assert "w_word_r" not in deep
    assert "w_word_r" in to_verilog(dataclasses.replace(spec, pipeline=4).create(), "top")


def _xnor_mlp():
    from lowbit.ir import IntegerGraph

    rng = np.random.default_rng(5)
    w0, w1 = rng.integers(0, 2, (16, 32)), rng.integers(0, 2, (10, 16))
    lo, hi = MatMulThreshold("p", BIPOLAR, w0, None).acc_range
    t0 = np.sort(rng.integers(lo, hi + 2, (16, 1)), axis=1)
    graph = IntegerGraph(BIPOLAR, (MatMulThreshold("fc0", BIPOLAR, w0, t0),
                                   MatMulThreshold("fc1", BIPOLAR, w1, None)))
    return graph, rng.integers(0, 2, (40, 32))


@pytest.mark.fast_sim
def test_depths_3_and_4_on_the_fast_path(tmp_path, private_verilator_cache):
    """An XNOR MLP with both layers at depth 3, then 4, then 6, on the fast Verilator path:
    bit-exact under its random stall patterns, the cycles per image of depth 0, and the first
    result exactly the report's ``pipeline_latency_cycles`` (3 + 3 + 3 for the label select of PE
    5 at its deepest, 4 + 4 + 3, 6 + 6 + 3) later."""
    from lowbit.flow import compile_model, verify_compiled_fast
    from lowbit.mapping import Schedule
    from lowbit.mapping.schedule import LayerFolding

    graph, x = _xnor_mlp()
    first = {}
    for depth in (0, 3, 4, 6):
        schedule = Schedule("ulx3s-85f", 25.0, (LayerFolding("fc0", 4, 8, pipeline=depth),
                                                LayerFolding("fc1", 5, 4, pipeline=depth)))
        out = tmp_path / f"d{depth}"
        report = compile_model(graph, out, schedule=schedule)
        rep = verify_compiled_fast(out, x)
        assert rep.ok, rep.mismatch
        assert rep.cycles_per_image == report.cycles_per_image
        first[depth] = (rep.first_output_cycle, report.mapping["pipeline_latency_cycles"])
    assert first[0][1] == 0 and first[3][1] == 3 + 3 + 3 and first[4][1] == 4 + 4 + 3
    assert first[6][1] == 6 + 6 + 3
    for depth in (3, 4, 6):
        assert first[depth][0] - first[0][0] == first[depth][1], depth


@pytest.mark.fast_sim
def test_adder_lanes_depths_3_and_4_on_the_fast_path(tmp_path, private_verilator_cache):
    """The ternary MLP on UINT2 inputs (adder-tree lanes) with both layers at depth 3, then 4,
    then 6, on the fast Verilator path: bit-exact under its random stall patterns, the cycles per
    image of depth 0, the first result exactly ``pipeline_latency_cycles`` (3 + 3 + 3, 4 + 4 + 3,
    6 + 6 + 3: the label select of PE 5 at its deepest) later."""
    from lowbit.flow import compile_model, verify_compiled_fast

    graph, x = _ternary_mlp()
    first = {}
    for depth in (0, 3, 4, 6):
        out = tmp_path / f"d{depth}"
        report = compile_model(graph, out, schedule=_mlp_schedule((depth, depth)))
        rep = verify_compiled_fast(out, x)
        assert rep.ok, rep.mismatch
        assert rep.cycles_per_image == report.cycles_per_image
        first[depth] = (rep.first_output_cycle, report.mapping["pipeline_latency_cycles"])
    assert first[3][1] == 3 + 3 + 3 and first[4][1] == 4 + 4 + 3 and first[6][1] == 6 + 6 + 3
    for depth in (3, 4, 6):
        assert first[depth][0] - first[0][0] == first[depth][1], depth


# -- depths 5 and 6: two and three register stages inside every lane's tree ----------------------

def test_tree_stages_per_depth():
    from lowbit.hw.fmax import tree_stages

    # kills: 5 / 6 keeping one stage, or stages below 3
    assert [tree_stages(d) for d in range(7)] == [0, 0, 0, 1, 1, 2, 3]


def test_popcount_cuts_hand_worked():
    """128 XNOR bits: the column totals after each counter level are 128, 86 (42 3:2 counters
    and a 2:2 on the last two bits: 43 + 43), 44, 25, 16, 12, 11, 10: 7 counter levels, the adder
    an 8th, the memory read one more ahead: 9. One stage after floor(8 / 2) = 4 levels (16 bits,
    as ``popcount_cut``); two after floor(9 / 3) - 1 = 2 and floor(18 / 3) - 1 = 5 (stretches
    read + 2, 3, 3); three after floor(9 / 4) - 1 = 1, floor(18 / 4) - 1 = 3 and
    floor(27 / 4) - 1 = 5 (read + 1, 2, 2, 2 + adder). Kills: the read not counted (three stages
    at 2, 4, 6), ceil instead of floor (2, 4, 6 too), one level off, the bits of the wrong level,
    and a 1-stage rule that is not ``popcount_cut``'s (the new rule alone gives 3 there)."""
    from lowbit.hw.fmax import popcount_cut, popcount_cuts, popcount_depth

    assert popcount_depth(128, 2) == (8, 8)
    assert popcount_cuts(128, 2, 1) == ((4, 16),) and popcount_cut(128, 2) == (4, 16)
    assert popcount_cuts(128, 2, 2) == ((2, 44), (5, 12))
    assert popcount_cuts(128, 2, 3) == ((1, 86), (3, 25), (5, 12))
    # 64 XNOR bits: columns 64 -> 43 -> 23 -> 15 -> 11 -> 9, then the adder (6 levels, 7 with
    # the read): two stages after floor(7 / 3) - 1 = 1 and floor(14 / 3) - 1 = 3, three after
    # 1, 2 (floor(14 / 4) - 1) and 4 (floor(21 / 4) - 1)
    assert popcount_cuts(64, 2, 2) == ((1, 43), (3, 15))
    assert popcount_cuts(64, 2, 3) == ((1, 43), (2, 23), (4, 11))
    # 16 XNOR bits: columns 16 -> 11 -> 6, then the adder (3 levels, 4 with the read): two
    # stages both after 1 (floor(4 / 3) - 1 = 0, clamped to the first counter level: stacked),
    # three after 1, 1 and 2 (floor(12 / 4) - 1)
    assert popcount_cuts(16, 2, 2) == ((1, 11), (1, 11))
    assert popcount_cuts(16, 2, 3) == ((1, 11), (1, 11), (2, 6))
    # 4 XNOR bits: one counter level and the adder: every stage stacked after level 1 (kills a
    # rule that puts one at the inputs, 0, or past the counters, 2)
    assert popcount_cuts(4, 2, 3) == ((1, 3),) * 3
    # one bit: no counter level, the stages stacked at its input
    assert popcount_cuts(1, 2, 2) == ((0, 1), (0, 1))


def test_adder_tree_cuts_hand_worked():
    """8 terms of 4 bits: 3 adder levels (4 sums of 5 bits, 2 of 6, 1 of 7); two stages after
    ceil(3 / 3) = 1 and ceil(6 / 3) = 2 levels, three after 1, 2 (ceil(6 / 4)) and 3 (the
    tree's sum itself, before the correction term). Kills: floor instead of ceil (three stages at
    0, 1, 2), the widths of the wrong level, and a 1-stage rule that is not ``adder_tree_cut``'s."""
    from lowbit.hw.fmax import adder_tree_cut, adder_tree_cuts

    assert adder_tree_cuts(8, 4, 1) == ((2, 12),) == (adder_tree_cut(8, 4),)
    assert adder_tree_cuts(8, 4, 2) == ((1, 20), (2, 12))
    assert adder_tree_cuts(8, 4, 3) == ((1, 20), (2, 12), (3, 7))
    # 5 terms: 5 5 4 after one level (the lone term passed on), 6 4 after two
    assert adder_tree_cuts(5, 4, 2) == ((1, 14), (2, 10))
    # 2 terms (one adder): both stages after it, stacked; one term: at the term
    assert adder_tree_cuts(2, 3, 2) == ((1, 4), (1, 4))
    assert adder_tree_cuts(1, 3, 3) == ((0, 3),) * 3


def _xnor_wide_spec(simd, pipeline, mw=None):
    rng = np.random.default_rng(simd)
    mw = simd if mw is None else mw
    w = rng.integers(0, 2, (2, mw))
    lo, hi = MatMulThreshold("p", BIPOLAR, w, None).acc_range
    t = np.sort(rng.integers(lo, hi + 2, (2, 1)), axis=1)
    node = MatMulThreshold("fc", BIPOLAR, w, t, BIPOLAR)
    return MVTUSpec(node, pe=2, simd=simd, pipeline=pipeline), BIPOLAR.sample(rng, (4, mw))


def test_tree_paths_at_depths_5_and_6():
    """The 128-bit XNOR tree (8 levels, 8 carry bits) in three pieces at 5 (2, 3, 3 levels) and
    four at 6 (1, 2, 2, 3), the adder's carry in the last; the estimate no lower than at 4.
    Kills: the Fmax model keeping two pieces, or pieces that do not add up to the tree."""
    from lowbit.hw.fmax import LogicPath, estimate_fmax

    spec, _ = _xnor_wide_spec(128, 5)
    tree = [p for p in spec.logic_paths() if p.name.startswith("tree")]
    assert tree == [LogicPath("tree to its register", 2, 0),
                    LogicPath("tree between its registers 1 and 2", 3, 0),
                    LogicPath("tree from its register", 3, 8)]
    six = dataclasses.replace(spec, pipeline=6)
    assert [(p.levels, p.carry_bits) for p in six.logic_paths() if p.name.startswith("tree")] == \
        [(1, 0), (2, 0), (2, 0), (3, 8)]
    f = [estimate_fmax(dataclasses.replace(spec, pipeline=d), "ecp5") for d in (4, 5, 6)]
    assert f == sorted(f)


def test_mvtu_depths_5_and_6_resources_and_latency():
    """SIMD 4 XNOR lanes (PE 2): each added stage holds the 3 column bits after the one counter
    level (stacked) in each lane, and 4 control bits; one more cycle of latency each, none per
    vector. Kills: the FF model counting one cut only, latency not ``2 + pipeline`` beyond 4."""
    spec, _ = _mvtu_case("xnor", MVTU_SHAPES[0])
    ff = [dataclasses.replace(spec, pipeline=d).resources().ff for d in (4, 5, 6)]
    assert ff == [ff[0], ff[0] + 2 * 3 + 4, ff[0] + 2 * (2 * 3 + 4)]
    assert [dataclasses.replace(spec, pipeline=d).latency() for d in (5, 6)] == [3 + 2 + 5, 11]
    assert dataclasses.replace(spec, pipeline=6).cycles() == spec.cycles()


def _deep_run_checks(base, x, seed):
    ref = base.reference(x)
    for depth in (5, 6):
        spec = dataclasses.replace(base, pipeline=depth)
        got, run = _mvtu_run(spec, x)
        assert np.array_equal(got, ref), f"pipeline {depth}"
        nf = spec.neuron_folds
        assert np.diff(run.out_cycles[nf - 1::nf]).tolist() == [spec.cycles()] * (len(x) - 1)
        assert run.out_cycles[0] - spec.synapse_folds == spec.latency()
        assert spec.latency() == spec.synapse_folds + 2 + depth
        got, _ = _mvtu_run(spec, x, seed=seed + depth, valid_prob=0.5, ready_prob=0.4)
        assert np.array_equal(got, ref), f"pipeline {depth} under stalls"


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("kind", ["xnor", "ternary-bipolar", *ADDER_KINDS])
def test_mvtu_depths_5_and_6_every_parallel_kind(kind):
    """Every parallel MAC kind at 5 and 6 (SIMD 4: the stages stacked where the tree is short):
    bit-exact with and without random stalls, the cycles per vector unchanged, the first output
    exactly ``spec.latency()`` after the last input. Kills: a control chain one stage short
    (latency, and outputs misaligned with ``first`` / ``last``), the ADDSUB ``sum(x)`` or a
    negation popcount with fewer stages than its lane's tree (wrong sums)."""
    if kind == "ternary-bipolar":
        base, x = _ternary_bipolar_case()
    else:
        base, x = _mvtu_case(kind, MVTU_SHAPES[0])
    _deep_run_checks(base, x[:4], 60)


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("simd", [16, 64])
def test_mvtu_depths_5_and_6_wide_popcount(simd):
    """XNOR lanes of 16 bits (stages at levels 1, 1 and 1, 1, 2) and of 64 (6 levels: 1, 3 at 5;
    1, 2, 4 at 6), SF 2: spread registers, bit-exact under stalls, the spec's latency."""
    base, x = _xnor_wide_spec(simd, 0, mw=2 * simd)
    _deep_run_checks(base, x, 70)
