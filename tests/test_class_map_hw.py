# amaranth: UnusedElaboratable=no
"""The exact per-class tail in hardware (issue 16): the label select decides by the class map.

Hand-worked cases first (the map, its multipliers and its cost terms), then the label select in
the Amaranth simulator against ``ClassMap.decide`` (PE 1, 2, 5 of 10 classes, ties, both kinds of
multiplier, values beyond 64 bits, top-k), then whole accelerators with a class map on the fast
compiled path: every label equals ``graph.predict`` and the cycles per image equal the model's.
"""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from lowbit.hw._util import pack_words
from lowbit.hw.codec import StreamFormat, decode_result, label_bits
from lowbit.hw.cost import class_map_lanes, label_select_resources, naf
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.registry import stitching
from lowbit.hw.stream.label import LabelSelect, LabelSelectSpec
from lowbit.hw.top import Accelerator, stream_format
from lowbit.hw.verilog import to_verilog
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold
from lowbit.ir.boundary import ClassMap
from lowbit.mapping import Schedule
from lowbit.mapping.schedule import LayerFolding
from lowbit.sim.amaranth_sim import run_stream
from lowbit.sim.verify import verify_fast
from lowbit.sw_reference import argmax_lowest

HAND = ClassMap((2, 1, -3), (0, 0, 1))
"""Scores (3, 5, -2) map to (6, 5, 7): class 2, where the raw scores say class 1."""

SMALL = ClassMap((3, -2, 1, 5, -1, 2, 4, -3, 1, 2), (0, 9, 7, 3, 12, 11, 0, 14, 13, 5))
"""Small multipliers of either sign: shift-add products."""

FLOAT = ClassMap(
    tuple((-1) ** (c // 3) * ((2_654_435_761 * (c + 1)) % 2**23 + 2**23) for c in range(10)),
    tuple((40_503 * (c + 3)) ** 3 % 2**40 for c in range(10)),
)
"""24-bit multipliers and 40-bit offsets, like a float32 per-class scale and bias: one lane with
ten different wide multipliers takes the partial products."""

WIDE = ClassMap(
    tuple((-1) ** c * (2**70 + 977 * c) for c in range(10)),
    tuple(2**95 - 12_345 * c for c in range(10)),
)
"""Mapped values beyond 64 bits."""


# -- hand-worked ----------------------------------------------------------------------------------


def test_hand_worked_map():
    spec = LabelSelectSpec(classes=3, pe=1, score_bits=4, class_map=HAND)
    assert HAND.apply([[3, 5, -2]]).tolist() == [[6, 5, 7]]
    assert spec.reference([[3, 5, -2]]).tolist() == [2]
    assert argmax_lowest(np.array([[3, 5, -2]])).tolist() == [1]
    # scores (1, 2, 0): mapped (2, 2, 1), a tie between classes 0 and 1 -> 0
    assert spec.reference([[1, 2, 0]]).tolist() == [0]
    # the negative multiplier: scores (-1, -2, -3) map to (-2, -2, 10) -> class 2
    assert spec.reference([[-1, -2, -3]]).tolist() == [2]


def test_naf_digits():
    assert naf(0) == ()
    assert naf(7) == ((0, -1), (3, 1))             # 8 - 1
    assert naf(-3) == ((0, 1), (2, -1))            # 1 - 4
    assert naf(45) == ((0, 1), (2, -1), (4, -1), (6, 1))   # 1 - 4 - 16 + 64
    rng = np.random.default_rng(0)
    for m in [int(v) for v in rng.integers(-(2**62), 2**62, 200)] + [2**200 + 1, -(2**130) + 7]:
        digits = naf(m)
        assert sum(d << j for j, d in digits) == m
        shifts = [j for j, _ in digits]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))  # non-adjacent


def test_lane_plans():
    # one beat of small multipliers: shift-add everywhere (3 = 4 - 1, -2 = -2, 1 = 1, 5 = 4 + 1)
    assert all(lane.shift_add for lane in class_map_lanes(SMALL, 10, 8))
    # one lane of ten different 24-bit multipliers: the partial products of the 8 score bits
    (lane,) = class_map_lanes(FLOAT, 1, 8)
    assert not lane.shift_add
    assert lane.mults == FLOAT.mult and lane.offsets == FLOAT.offset
    assert lane.mult_bits == 25                    # [-2^24, 2^24)
    # PE 5: lane p holds classes p and p + 5
    lanes = class_map_lanes(SMALL, 5, 8)
    assert [lane.mults for lane in lanes] == [(3, 2), (-2, 4), (1, -3), (5, 1), (-1, 2)]


def test_flip_flops_with_a_map():
    # 10 classes of 8 bits, one per beat (173 FFs without a map, test_label_select.py): the
    # running maximum holds a mapped value of SMALL.bits(-128, 127) bits instead of 8
    width = SMALL.bits(-128, 127)
    assert SMALL.value_range(-128, 127) == (-637, 638)   # class 3: 5 * -128 + 3, 5 * 127 + 3
    assert width == 11
    assert label_select_resources(10, 8, 1, class_map=SMALL).ff == 173 - 8 + 11
    # one beat: no running maximum, the same FFs as without a map
    assert label_select_resources(10, 8, 10, class_map=SMALL).ff == 85
    assert label_select_resources(10, 8, 10, class_map=SMALL).lut > label_select_resources(10, 8, 10).lut


def test_spec_takes_the_map_of_the_last_node():
    rng = np.random.default_rng(1)
    node = MatMulThreshold("fc", BIPOLAR, rng.integers(0, 2, (10, 16)), None, class_map=SMALL)
    spec = MVTUSpec(node, pe=5, simd=4)
    label = stitching([spec])[1]
    assert label == LabelSelectSpec(classes=10, pe=5, score_bits=spec.out_bits, class_map=SMALL)
    assert label.resources() == label_select_resources(10, spec.out_bits, 5, class_map=SMALL)
    assert to_verilog(label.create(), name="u") == to_verilog(
        LabelSelect(signed(spec.out_bits), classes=10, pe=5, class_map=SMALL), name="u")
    plain = MatMulThreshold("fc", BIPOLAR, node.weights, None)
    assert stitching([MVTUSpec(plain, pe=5, simd=4)])[1].class_map is None


def test_report_names_the_mapped_width():
    graph = _graph(SMALL)
    schedule = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 4, 6), LayerFolding("fc1", 5, 4)))
    entry = schedule.report(graph)["label_select"]
    # 16 bipolar inputs: scores in [-16, 16], 6 bits; over [-32, 31] class 3 maps 5 s + 3 to
    # [-157, 158]: 9 bits
    assert (entry["score_bits"], entry["class_map_bits"]) == (6, 9)
    assert LabelSelectSpec(classes=10, pe=5, score_bits=6, class_map=SMALL).value_bits == 9
    assert LabelSelectSpec(classes=10, pe=5, score_bits=6).value_bits == 6
    assert "class_map_bits" not in Schedule(
        "pynq-z2", 100.0, (LayerFolding("fc0", 4, 6), LayerFolding("fc1", 5, 4))
    ).report(_graph(None))["label_select"]


def test_errors():
    with pytest.raises(TypeError, match=r"^class_map must be a ClassMap or None, not \(1, 2\)$"):
        LabelSelectSpec(classes=2, pe=1, score_bits=4, class_map=(1, 2))
    with pytest.raises(ValueError, match=r"^class_map has 3 classes, but the label select takes "
                                         r"10$"):
        LabelSelect(signed(4), classes=10, pe=2, class_map=HAND)


# -- the label select in the Amaranth simulator ---------------------------------------------------


def _run(dut, scores, bits, pe, **throttle):
    beats = [pack_words(row[k * pe:(k + 1) * pe], bits) for row in scores
             for k in range(len(row) // pe)]
    run = run_stream(dut, beats, len(scores), max_cycles=20 * len(beats) + 100, **throttle)
    fmt = StreamFormat(input_size=1, simd=1, in_bits=1, classes=scores.shape[1], score_bits=bits)
    decoded = [decode_result(fmt, w) for w in run.outputs]
    return run, np.array([lab for lab, _ in decoded]), np.array([sc for _, sc in decoded])


def _scores(rng, cm, bits, n=60):
    """Random scores over the whole signed range, narrow ones with the largest mapped value tied
    between classes where the map allows it (found among random narrow rows), and the ends of the
    range."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    s = rng.integers(lo, hi + 1, (n, cm.classes))
    narrow = rng.integers(-3, 4, (3000, cm.classes))
    mapped = cm.apply(narrow)
    tied = narrow[(mapped == mapped.max(axis=1, keepdims=True)).sum(axis=1) > 1][: n // 4]
    s[: len(tied)] = tied
    s[-2], s[-1] = lo, hi
    return s


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("pe", [1, 2, 5])
@pytest.mark.parametrize("name", ["small", "float", "wide"])
def test_label_select_decides_by_the_map(name, pe):
    cm = {"small": SMALL, "float": FLOAT, "wide": WIDE}[name]
    bits = 6
    scores = _scores(np.random.default_rng(pe), cm, bits)
    expected = cm.decide(scores)
    assert (expected != argmax_lowest(scores)).sum() >= 10, "the map must change decisions"
    dut = LabelSelect(signed(bits), classes=10, pe=pe, class_map=cm)
    run, labels, got = _run(dut, scores, bits, pe)
    assert np.array_equal(got, scores)                 # the raw scores, not the mapped values
    bad = np.flatnonzero(labels != expected)
    assert not len(bad), f"image {bad[0]}: label {labels[bad[0]]} != {expected[bad[0]]}"
    assert np.diff(run.out_cycles).tolist() == [10 // pe] * (len(scores) - 1)


def test_the_maps_exercise_both_multipliers_and_ties():
    kinds = {lane.shift_add for cm in (SMALL, FLOAT, WIDE) for pe in (1, 2, 5)
             for lane in class_map_lanes(cm, pe, 6)}
    assert kinds == {True, False}
    assert WIDE.bits(-32, 31) > 64
    scores = _scores(np.random.default_rng(1), SMALL, 6)
    mapped = SMALL.apply(scores)
    ties = (mapped == mapped.max(axis=1, keepdims=True)).sum(axis=1) > 1
    assert ties.sum() >= 3


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("seed", [3, 4])
def test_label_select_throttled_unsigned(seed):
    cm = ClassMap((1, 1, 1, 1, 1, 1), (0, 3, 3, 1, 0, 2))
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 8, (50, 6))
    scores[0] = (4, 1, 2, 3, 4, 2)       # mapped (4, 4, 5, 4, 4, 4): class 2
    scores[1] = (4, 1, 1, 3, 4, 2)       # mapped (4, 4, 4, 4, 4, 4): a six-way tie, class 0
    dut = LabelSelect(unsigned(3), classes=6, pe=3, class_map=cm)
    _, labels, _ = _run(dut, scores, 3, 3, seed=seed, valid_prob=0.5, ready_prob=0.5)
    assert labels[:2].tolist() == [2, 0]
    assert np.array_equal(labels, cm.decide(scores))


@pytest.mark.amaranth_sim
def test_top_k_by_mapped_values():
    bits, k = 6, 3
    scores = _scores(np.random.default_rng(7), SMALL, bits, n=30)
    dut = LabelSelect(signed(bits), classes=10, pe=2, top_k=k, class_map=SMALL)
    beats = [pack_words(row[j * 2:(j + 1) * 2], bits) for row in scores for j in range(5)]
    run = run_stream(dut, beats, len(scores), max_cycles=2000)
    lb = label_bits(10)
    top = [[(w >> (lb + 10 * bits + j * lb)) & ((1 << lb) - 1) for j in range(k)]
           for w in run.outputs]
    expected = np.argsort(-SMALL.apply(scores), axis=1, kind="stable")[:, :k]
    assert top == expected.tolist()


# -- whole accelerators on the fast compiled path -------------------------------------------------


def _graph(cm: ClassMap) -> IntegerGraph:
    rng = np.random.default_rng(5)
    w0 = rng.integers(0, 2, (16, 24))
    # accumulators of random UINT4 pixels spread about 0 by about 40: thresholds within that
    n0 = MatMulThreshold("fc0", DataType.uint(4), w0, rng.integers(-20, 21, (16, 1)))
    n1 = MatMulThreshold("fc1", BIPOLAR, rng.integers(0, 2, (10, 16)), None, class_map=cm)
    return IntegerGraph(DataType.uint(4), (n0, n1))


@pytest.mark.fast_sim
@pytest.mark.parametrize("name", ["small", "wide"])
def test_accelerator_labels_equal_the_graph(name, private_verilator_cache):
    cm = {"small": SMALL, "wide": WIDE}[name]
    graph = _graph(cm)
    x = np.random.default_rng(6).integers(0, 16, (1500, 24))
    pred = graph.predict(x)
    raw = argmax_lowest(graph.scores(x))
    assert (pred != raw).mean() > 0.2, "the map must change the decision on many inputs"
    schedule = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 4, 6), LayerFolding("fc1", 5, 4)))
    specs = schedule.apply(graph)
    acc = Accelerator(specs)
    assert acc.label_spec.class_map == cm
    rep = verify_fast(graph, to_verilog(acc), stream_format(acc), x)
    assert rep.ok, rep.mismatch
    assert [r["mismatched_images"] for r in rep.runs] == [0, 0, 0]
    assert np.array_equal(rep.labels, pred)
    # fc0: (16 / 4) * (24 / 6) = 16 cycles, fc1: (10 / 5) * (16 / 4) = 8: 16 per image
    assert rep.cycles_per_image == schedule.report(graph)["cycles_per_image"] == 16


@pytest.mark.cocotb
def test_cocotb_testbench_expects_the_graph_decision(tmp_path):
    """The cocotb scoreboard (lowbit.sim.tb_accel) takes the expected label from the graph's class
    map (the graph reaches it through model.npz): the RTL's labels pass it."""
    from lowbit.sim.accel_sim import RunSpec, simulate

    graph = _graph(SMALL)
    specs = [MVTUSpec(graph.nodes[0], pe=4, simd=6), MVTUSpec(graph.nodes[1], pe=5, simd=4)]
    x = np.random.default_rng(8).integers(0, 16, (120, 24))
    assert (graph.predict(x) != argmax_lowest(graph.scores(x))).sum() >= 20
    report = simulate(graph, specs, x, tmp_path,
                      runs=[RunSpec("steady"), RunSpec("throttled-seed9", 0.5, 0.4, 9)])
    for run in report.runs:
        assert run["checked"] == len(x), run["name"]
        assert run["mismatched_images"] == 0, (run["name"], run["mismatches"])
    assert list(report.labels) == list(graph.predict(x))
    assert report.steady["cycles_per_image"] == 16
