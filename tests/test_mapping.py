"""The cost model, the folding search and the schedule artefact.

The cycle model is checked first against the published BNN-PYNQ foldings
(``BNN_PYNQ_FOLDING.md``, ``ARITHMETIC.md`` section 7), then the search and the schedule.
"""

import dataclasses
import json
import math

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.boards import get_board
from lowbit.ir.resources import Resources
from lowbit.hw.cost import dwc_resources, memory_resources, mvtu_resources
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.mapping import LayerFolding, Schedule, search_folding
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold

UINT2 = DataType.uint(2)
UINT8 = DataType.uint(8)


def _node(rng, name, mw, mh, input_dtype=BIPOLAR, n_thresholds=None):
    """A node with random bit weights and random sorted thresholds in the accumulator range."""
    weights = rng.integers(0, 2, size=(mh, mw))
    if n_thresholds is None:
        return MatMulThreshold(name, input_dtype, weights, None)
    probe = MatMulThreshold(name, input_dtype, weights, None)
    lo, hi = probe.acc_range
    thresholds = np.sort(rng.integers(lo, hi + 2, size=(mh, n_thresholds)), axis=1)
    out = BIPOLAR if n_thresholds == 1 else DataType.uint(n_thresholds.bit_length())
    return MatMulThreshold(name, input_dtype, weights, thresholds, out)


def _mlp(seed=0, sizes=(64, 48, 30, 10)):
    """UINT8 input -> UINT2 (integer datapath) -> UINT2 input -> bipolar -> scores."""
    rng = np.random.default_rng(seed)
    a, b, c, d = sizes
    return IntegerGraph(UINT8, (
        _node(rng, "fc0", a, b, UINT8, 3),
        _node(rng, "fc1", b, c, UINT2, 1),
        _node(rng, "fc2", c, d, BIPOLAR),
    ))


def _binary_mlp(seed=1, sizes=(256, 256, 256, 10)):
    rng = np.random.default_rng(seed)
    nodes = [_node(rng, f"fc{i}", mw, mh, BIPOLAR, 1) for i, (mw, mh) in enumerate(zip(sizes[:-2], sizes[1:-1]))]
    nodes.append(_node(rng, f"fc{len(nodes)}", sizes[-2], sizes[-1], BIPOLAR))
    return IntegerGraph(BIPOLAR, tuple(nodes))


# -- the cycle model against BNN-PYNQ --------------------------------------------------------------

LFC_W1A1 = [  # MW, MH, SIMD, PE, cycles
    (832, 1024, 64, 32, 416),
    (1024, 1024, 32, 64, 512),
    (1024, 1024, 64, 32, 512),
    (1024, 64, 8, 16, 512),
]
CNV_FC_W1A1 = [  # L6-L8
    (256, 512, 4, 1, 32_768),
    (512, 512, 8, 1, 32_768),
    (512, 64, 1, 4, 8_192),
]
CNV_CONV = [  # K, IFM_CH, OFM_DIM, OFM_CH
    (3, 3, 30, 64), (3, 64, 28, 64), (3, 64, 12, 128), (3, 128, 10, 128), (3, 128, 3, 256), (3, 256, 1, 256),
]
CNV_W1A1_FOLDING = [  # SIMD, PE, cycles: L0-L5, then the fc layers
    (3, 16, 32_400), (32, 32, 28_224), (32, 16, 20_736), (32, 16, 28_800), (32, 4, 20_736), (32, 1, 18_432),
]
CNV_W2A2_FOLDING = [
    (3, 8, 64_800), (16, 16, 112_896), (16, 8, 82_944), (16, 8, 115_200), (8, 4, 82_944), (8, 1, 73_728),
    (2, 1, 65_536), (2, 2, 65_536), (1, 4, 8_192),
]


@pytest.mark.parametrize("mw, mh, simd, pe, cycles", LFC_W1A1 + CNV_FC_W1A1)
def test_bnn_pynq_fc_cycles(mw, mh, simd, pe, cycles):
    node = _node(np.random.default_rng(mw * mh), "fc", mw, mh)
    assert MVTUSpec(node, pe=pe, simd=simd).cycles() == cycles


@pytest.mark.parametrize("table", [CNV_W1A1_FOLDING, CNV_W2A2_FOLDING[:6]], ids=["W1A1", "W2A2"])
def test_bnn_pynq_conv_cycles(table):
    """A convolution is one MVTU vector per output pixel: MH = OFM_CH, MW = K*K*IFM_CH."""
    rng = np.random.default_rng(7)
    for (k, ifm_ch, ofm_dim, ofm_ch), (simd, pe, cycles) in zip(CNV_CONV, table):
        node = _node(rng, "conv", k * k * ifm_ch, ofm_ch)
        assert MVTUSpec(node, pe=pe, simd=simd).cycles() * ofm_dim ** 2 == cycles


def test_bnn_pynq_w2a2_fc_cycles():
    rng = np.random.default_rng(8)
    for (mw, mh, _, _, _), (simd, pe, cycles) in zip(CNV_FC_W1A1, CNV_W2A2_FOLDING[6:]):
        assert MVTUSpec(_node(rng, "fc", mw, mh), pe=pe, simd=simd).cycles() == cycles


def test_cnv_w1a1_time_per_image_at_299_mhz():
    """Bottleneck 32,768 cycles at the Ultra96's 299 MHz: 109.6 us (measured 109.29 us)."""
    rng = np.random.default_rng(6)
    graph = IntegerGraph(BIPOLAR, (
        _node(rng, "L6", 256, 512, BIPOLAR, 1),
        _node(rng, "L7", 512, 512, BIPOLAR, 1),
        _node(rng, "L8", 512, 64, BIPOLAR),
    ))
    schedule = Schedule("ultra96-v2", 299, tuple(
        LayerFolding(name, pe, simd) for name, (_, _, simd, pe, _) in zip(("L6", "L7", "L8"), CNV_FC_W1A1)))
    report = schedule.report(graph)
    assert [layer["cycles"] for layer in report["layers"]] == [32_768, 32_768, 8_192]
    assert report["cycles_per_image"] == 32_768
    assert report["bottleneck"] == "L6"
    assert round(report["time_per_image_us"], 1) == 109.6
    assert round(report["throughput_fps"]) == 9_125
    assert report["latency_cycles"] == 32_768 + 32_768 + 8_192
    # the whole network: the bottleneck over all nine layers
    assert max(c for _, _, c in CNV_W1A1_FOLDING + [(0, 0, c) for *_, c in CNV_FC_W1A1]) == 32_768
    assert round(max(c for *_, c in CNV_W2A2_FOLDING) / 299, 1) == 385.3


# -- the resource model ----------------------------------------------------------------------------

def test_memory_mapping():
    assert memory_resources(64, 1000) == Resources(lut=1000)           # shallow: LUTRAM
    assert memory_resources(128, 32) == Resources(lut=64)              # 4096 bits: LUTRAM
    assert memory_resources(512, 36) == Resources(bram36=0.5)          # one RAMB18
    assert memory_resources(512, 72) == Resources(bram36=1.0)          # RAMB36 in 512x72
    assert memory_resources(512, 108) == Resources(bram36=1.5)         # a RAMB36 and a RAMB18
    assert memory_resources(32768, 1) == Resources(bram36=1.0)
    assert memory_resources(416, 2048) == Resources(bram36=28.5)       # LFC L0 weights
    assert memory_resources(0, 8) == Resources()


def test_resources_arithmetic_and_fit():
    a, b = Resources(lut=10, ff=20, bram36=0.5, dsp=0), Resources(lut=1, ff=2, bram36=1.0, dsp=3)
    assert a + b == Resources(lut=11, ff=22, bram36=1.5, dsp=3)
    assert sum([a, b]) == a + b
    assert (a + b).as_dict() == {"lut": 11, "ff": 22, "bram36": 1.5, "dsp": 3}
    board = get_board("pynq-z2")
    assert a.fits(board)
    assert Resources(lut=53_201).exceeded(board) == ("lut",)
    assert not Resources(bram36=99).fits(board, 0.7)
    assert Resources(bram36=98).fits({"lut": 1, "ff": 1, "bram36": 140, "dsp": 0}, 0.7)


def test_mvtu_resources_grow_with_parallelism():
    kw = dict(mw=256, mh=256, in_bits=1, binary_input=True, acc_bits=9, n_thresholds=1, out_bits=1)
    luts = [mvtu_resources(pe=p, simd=s, **kw).lut for p, s in [(1, 1), (4, 4), (16, 16), (64, 64)]]
    assert luts == sorted(luts) and luts[0] < luts[-1]
    assert mvtu_resources(pe=4, simd=4, **kw).dsp == 0
    wide = mvtu_resources(mw=64, mh=64, pe=8, simd=8, in_bits=8, binary_input=False, acc_bits=16,
                          n_thresholds=3, out_bits=2)
    narrow = mvtu_resources(mw=64, mh=64, pe=8, simd=8, in_bits=1, binary_input=True, acc_bits=8,
                            n_thresholds=1, out_bits=1)
    assert wide.lut > narrow.lut


def test_width_converter():
    assert dwc_resources(1, 32, 32) == Resources()
    # 2 -> 3 elements of 8 bits: capacity 2 + 3 + 2 - 1 = 6 elements, a 48-bit buffer, 3-bit count
    assert dwc_resources(8, 2, 3) == Resources(lut=96, ff=48 + 3)
    assert dwc_resources(1, 4, 1) == Resources(lut=10, ff=5 + 3)
    with pytest.raises(ValueError, match=r"^elem_bits must be a positive integer, not 0$"):
        dwc_resources(0, 8, 8)


# -- the folding search ----------------------------------------------------------------------------

def _check_divisors(graph, schedule):
    for node, layer in zip(graph.nodes, schedule.layers):
        assert layer.name == node.name
        assert node.mh % layer.pe == 0
        assert node.mw % layer.simd == 0


@pytest.mark.parametrize("board", ["pynq-z2", "zybo-z7-10"])
@pytest.mark.parametrize("budget", [0.05, 0.2, 0.7, 1.0])
def test_search_picks_divisors_within_budget(board, budget):
    for graph in (_mlp(), _binary_mlp()):
        try:
            schedule = search_folding(graph, board, budget=budget)
        except LowbitError:
            continue
        _check_divisors(graph, schedule)
        assert schedule.board == board
        assert schedule.clock_mhz == get_board(board).fabric_clock_mhz
        report = schedule.report(graph)
        for kind, figure in report["resources"].items():
            assert figure["used"] <= budget * figure["available"], kind
            assert figure["fraction"] <= budget


def test_more_budget_is_never_slower():
    graph = _binary_mlp(sizes=(512, 512, 256, 10))
    results = []
    for budget in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0):
        try:
            schedule = search_folding(graph, "zybo-z7-10", budget=budget)
        except LowbitError:
            assert not results, f"budget {budget} failed after a smaller one succeeded"
            continue
        results.append(schedule.report(graph)["cycles_per_image"])
    assert len(results) >= 5
    assert all(a >= b for a, b in zip(results, results[1:])), results
    assert results[0] > results[-1]


def test_tiny_budget_names_the_resource():
    with pytest.raises(LowbitError, match=r"^the graph does not fit pynq-z2 within a budget of 0\.0001 "
                                          r"\(also with weights streamed from DDR\): "
                                          r"even the cheapest folding needs \d+ lut \(budget 5\.32 = 0\.0001 x 53200\)"):
        search_folding(_mlp(), "pynq-z2", budget=1e-4)


def test_memory_bound_graph_names_bram():
    # 4 x 1024 x 1024 bits of weights do not fit the 60 block RAMs of an xc7z010
    graph = _binary_mlp(sizes=(1024, 1024, 1024, 1024, 1024, 10))
    with pytest.raises(LowbitError, match=r"bram36 \(budget 42 = 0\.7 x 60\)"):
        search_folding(graph, "zybo-z7-10", ddr_weights=False)
    # with DDR allowed, the weights of some layers move off chip and the rest fits
    s = search_folding(graph, "zybo-z7-10")
    assert any(layer.weights == "ddr" for layer in s.layers)
    assert s.report(graph)["resources"]["bram36"]["used"] <= 42


@pytest.mark.parametrize("budget", [0, -0.5, 1.5, "0.7", True])
def test_bad_budget(budget):
    with pytest.raises(LowbitError, match=r"^budget must be a fraction in \(0, 1\], not "):
        search_folding(_mlp(), "pynq-z2", budget=budget)


def test_unknown_board_in_search():
    with pytest.raises(LowbitError, match=r"^unknown board 'nope'; known boards: "):
        search_folding(_mlp(), "nope")


def test_roomy_board_reaches_the_fully_parallel_bottleneck():
    graph = _binary_mlp(sizes=(32, 16, 16, 10))
    schedule = search_folding(graph, "zcu104", budget=1.0)
    report = schedule.report(graph)
    # fully unfolded every layer takes one cycle; the 32-bit input fits the 128-bit port
    assert report["cycles_per_image"] < 8
    assert [(layer.pe, layer.simd) for layer in schedule.layers] == [(16, 32), (16, 16), (10, 16)]


def test_input_stream_bounds_the_first_layer():
    """64 UINT8 inputs through a 64-bit AXI-HP port take 8 cycles: no point unfolding beyond that."""
    graph = _mlp()
    schedule = search_folding(graph, "pynq-z2", budget=1.0)
    report = schedule.report(graph)
    assert report["input_stream_cycles"] == 8
    assert report["cycles_per_image"] == 8
    assert report["layers"][0]["cycles"] <= 8
    # the same board with an unbounded input stream: the first layer unfolds further
    unbounded = dataclasses.replace(get_board("pynq-z2"), name="pynq-z2-unbounded", axi_hp_width_bits=None)
    schedule = search_folding(graph, unbounded, budget=1.0)
    assert schedule.board == "pynq-z2-unbounded"
    report = schedule.report(graph, board=unbounded)
    assert report["input_stream_cycles"] == 64 // schedule.layers[0].simd
    assert report["cycles_per_image"] < 8


def test_target_gives_the_cheapest_schedule_meeting_it():
    graph = _binary_mlp()
    fastest = search_folding(graph, "pynq-z2", budget=1.0)
    fast = fastest.report(graph)
    target = 64 * fast["cycles_per_image"]
    cheap = search_folding(graph, "pynq-z2", budget=1.0, max_cycles=target)
    slow = cheap.report(graph)
    assert slow["cycles_per_image"] <= target
    assert slow["resources"]["lut"]["used"] < fast["resources"]["lut"]["used"]
    by_fps = search_folding(graph, "pynq-z2", budget=1.0, target_fps=100e6 / target)
    assert by_fps == cheap
    with pytest.raises(LowbitError, match=r"^the target of 1 cycles per image is out of reach"):
        search_folding(_mlp(), "pynq-z2", max_cycles=1)


def test_search_is_deterministic():
    graph = _mlp()
    assert search_folding(graph, "pynq-z2") == search_folding(graph, "pynq-z2")


# -- the schedule artefact -------------------------------------------------------------------------

def test_schedule_json_round_trip(tmp_path):
    graph = _mlp()
    schedule = search_folding(graph, "pynq-z2", budget=0.5)
    assert Schedule.from_json(schedule.to_json()) == schedule
    path = schedule.save(tmp_path / "sub" / "schedule.json")
    assert Schedule.load(path) == schedule
    assert [p.name for p in path.parent.iterdir()] == ["schedule.json"]  # no temporary left behind
    doc = json.loads(path.read_text())
    assert doc["format"] == "lowbit-schedule" and doc["version"] == 1
    assert [layer["name"] for layer in doc["layers"]] == ["fc0", "fc1", "fc2"]


def test_schedule_simd_must_divide_mw():
    schedule = Schedule("pynq-z2", 100, (LayerFolding("fc0", 1, 5), LayerFolding("fc1", 1, 1),
                                         LayerFolding("fc2", 1, 1)))
    with pytest.raises(LowbitError, match=r"^layer 'fc0': SIMD \(5\) must divide MW \(64\) of node 'fc0'$"):
        schedule.apply(_mlp())


def test_schedule_pe_must_divide_mh():
    schedule = Schedule("pynq-z2", 100, (LayerFolding("fc0", 1, 1), LayerFolding("fc1", 7, 1),
                                         LayerFolding("fc2", 1, 1)))
    with pytest.raises(LowbitError, match=r"^layer 'fc1': PE \(7\) must divide MH \(30\) of node 'fc1'$"):
        schedule.report(_mlp())


def test_schedule_must_match_the_graph():
    graph = _mlp()
    short = Schedule("pynq-z2", 100, (LayerFolding("fc0", 1, 1), LayerFolding("fc1", 1, 1)))
    with pytest.raises(LowbitError, match=r"^the schedule has 2 layers \('fc0', 'fc1'\) but the graph has 3 nodes"):
        short.apply(graph)
    renamed = Schedule("pynq-z2", 100, (LayerFolding("fc0", 1, 1), LayerFolding("dense", 1, 1),
                                        LayerFolding("fc2", 1, 1)))
    with pytest.raises(LowbitError, match=r"^layer 1 of the schedule is 'dense' but node 1 of the graph is 'fc1'$"):
        renamed.apply(graph)


def test_schedule_file_errors_name_file_and_field(tmp_path):
    good = json.loads(Schedule("pynq-z2", 100, (LayerFolding("fc0", 2, 4),)).to_json())
    cases = [
        (dict(good, layers=[{"name": "fc0", "pe": 2, "simd": "x"}]),
         r"field 'layers\[0\]\.simd' must be a positive integer, not 'x'$"),
        (dict(good, layers=[{"name": "fc0", "pe": 0, "simd": 4}]),
         r"field 'layers\[0\]\.pe' must be a positive integer, not 0$"),
        (dict(good, layers=[{"name": "fc0", "pe": 2}]), r"missing field 'layers\[0\]\.simd'$"),
        (dict(good, layers=[{"name": "fc0", "pe": 2, "simd": 4, "pes": 3}]), r"unknown field 'layers\[0\]\.pes'$"),
        (dict(good, clock_mhz=-1), r"field 'clock_mhz' must be a positive number, not -1$"),
        (dict(good, version=2), r"expected format 'lowbit-schedule' version 1, got 'lowbit-schedule' version 2$"),
    ]
    for i, (doc, message) in enumerate(cases):
        path = tmp_path / f"s{i}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(LowbitError, match="^" + str(path).replace("\\", "\\\\") + ": " + message):
            Schedule.load(path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LowbitError, match=r"bad\.json: not a JSON document"):
        Schedule.load(bad)
    with pytest.raises(LowbitError, match=r"missing\.json: no such schedule file$"):
        Schedule.load(tmp_path / "missing.json")


def test_report_shows_capacity_beside_each_figure():
    graph = _mlp()
    report = search_folding(graph, "pynq-z2").report(graph)
    assert set(report["resources"]) == {"lut", "ff", "bram36", "dsp"}
    lut = report["resources"]["lut"]
    assert lut["available"] == 53_200
    assert lut["fraction"] == lut["used"] / 53_200
    assert report["latency_cycles"] >= report["cycles_per_image"]
    assert report["throughput_fps"] == 100e6 / report["cycles_per_image"]
    assert len(report["width_converters"]) == 2
    json.dumps(report)  # plain data


# -- conv graphs -------------------------------------------------------------------------------------

def test_search_folds_a_conv_graph_with_channel_divisors():
    from lowbit.quant import builtin as zoo
    from lowbit.ir.graph import MatMulThreshold, SlidingWindow

    graph = zoo.cnv("w1a1", width=0.125)
    schedule = search_folding(graph, "ultra96-v2", budget=0.3)
    specs = schedule.apply(graph)  # windows, pools and products all get specs
    assert len(specs) == len(graph.nodes)
    for i, (node, layer) in enumerate(zip(graph.nodes, schedule.layers)):
        if isinstance(node, SlidingWindow):
            c = graph.input_shape_of(i)[-1]
            nxt = schedule.layers[i + 1]
            assert c % layer.simd == 0 and layer.simd == nxt.simd  # the window feeds its product's SIMD
        elif isinstance(node, MatMulThreshold):
            assert node.mh % layer.pe == 0 and node.mw % layer.simd == 0
    report = schedule.report(graph)
    vectors = {n.name: math.prod(graph.input_shape_of(i)[:-1]) if graph.input_shape_of(i)[-1] == n.mw else 1
               for i, n in enumerate(graph.nodes) if isinstance(n, MatMulThreshold)}
    for layer, spec in zip(report["layers"], specs):
        if layer["op"] == "MatMulThreshold":
            assert layer["cycles"] == spec.cycles() * vectors[layer["name"]]
    assert report["cycles_per_image"] == max(layer["cycles"] for layer in report["layers"])


def test_schedule_refuses_a_window_simd_that_does_not_divide_the_channels():
    from lowbit.mapping.schedule import complete_layers
    from lowbit.quant import builtin as zoo

    graph = zoo.cnv("w1a1", width=0.125)
    layers = list(complete_layers(graph, zoo.build("cnv-w1a1", width=0.125).matmul_folding))
    layers[2] = LayerFolding("swg1", 5, 5)
    with pytest.raises(LowbitError, match=r"^layer 'swg1': SIMD \(5\) must divide the channels C \(8\) "
                                          r"of node 'swg1'$"):
        Schedule("ultra96-v2", 299.0, tuple(layers)).apply(graph)


@pytest.mark.parametrize("clock", [1e12, float("inf"), 0, -5, True, "100"])
def test_schedule_record_refuses_a_clock_out_of_range(clock):
    """The record checks what the file reader checks (issue 17): a clock above LIMITS.clock_mhz
    made in code is refused as well as one read from a file."""
    with pytest.raises(ValueError, match=r"^clock_mhz must be a positive number of MHz up to 1000, not "):
        Schedule("pynq-z2", clock, (LayerFolding("fc0", 2, 4),))


def test_schedule_record_takes_the_limit_clock():
    assert Schedule("pynq-z2", 1000, (LayerFolding("fc0", 2, 4),)).clock_mhz == 1000.0
