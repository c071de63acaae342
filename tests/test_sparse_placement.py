"""Thresholded fully connected layers on the sparse engine: schedule, mapper placement, RTL.

The graphs are pruned (about 10 % weight density), weight-shared (15 distinct non-zero INT4
values) MLPs with UINT2 hidden activations whose thresholds sit at accumulator quantiles, so that
about half the activations are zero, as after ReLU-like quantization.
"""

import json

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.cli import main
from lowbit.flow.steps import compile_model, verify_compiled_fast
from lowbit.hw.sparse.layer_spec import SparseLayerSpec, sparse_eligible
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.mapping import Schedule, search_folding
from lowbit.mapping.placement import placement_reasons
from lowbit.mapping.schedule import LayerFolding
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold
from lowbit.sim.fast import VerilatedModel
from lowbit.hw.codec import StreamFormat, input_words

U2, U4, INT4 = DataType.uint(2), DataType.uint(4), DataType.int(4)


def sparse_node(rng, name, mw, mh, in_dt, density, n_thr, levels=15):
    values = rng.choice([v for v in range(-8, 8) if v], size=levels, replace=False)
    w = np.where(rng.random((mh, mw)) < density, rng.choice(values, size=(mh, mw)), 0)
    base = MatMulThreshold(name, in_dt, w, None, weight_dtype=INT4)
    if not n_thr:
        return base
    x = rng.integers(in_dt.min, in_dt.max + 1, size=(256, mw))
    acc = base.accumulate(x)
    t = np.sort(np.quantile(acc, np.linspace(0.5, 0.95, n_thr), axis=0).T.round().astype(np.int64), axis=1)
    lo, hi = base.acc_range
    return MatMulThreshold(name, in_dt, w, np.clip(t, lo, hi + 1), DataType.uint(n_thr.bit_length()),
                           weight_dtype=INT4)


def sparse_mlp(seed=0, sizes=(64, 96, 64, 10), density=0.1):
    rng = np.random.default_rng(seed)
    nodes, dt = [], U4
    pairs = list(zip(sizes, sizes[1:]))
    for i, (mw, mh) in enumerate(pairs):
        last = i == len(pairs) - 1
        nodes.append(sparse_node(rng, f"fc{i}", mw, mh, dt, 0.3 if last else density, 0 if last else 3))
        dt = U2
    return IntegerGraph(U4, tuple(nodes))


# -- spec and schedule -------------------------------------------------------------------------------

def test_spec_is_bit_exact_in_its_reference_and_rejects_what_it_cannot_hold():
    g = sparse_mlp()
    spec = SparseLayerSpec(g.nodes[1], pes=4, lanes=4)
    assert spec.pe == 4 and spec.simd == 4 and spec.mw == 96 and spec.mh == 64
    # the engine image decodes to the node's weights (codebook index 0 is zero)
    from lowbit.sw_reference.sparse import dense_weights
    assert (dense_weights(spec.engine.image) == g.nodes[1].weight_values).all()
    # raw accumulators of the engine's oracle equal the node's accumulators
    x = np.random.default_rng(1).integers(0, 4, size=(5, 96))
    assert (spec.engine.reference(x) == g.nodes[1].accumulate(x)).all()
    with pytest.raises(ValueError, match=r"PEs \(5\) must divide MH \(64\) of node 'fc1'"):
        SparseLayerSpec(g.nodes[1], pes=5)
    with pytest.raises(ValueError, match=r"lanes \(5\) must divide MW \(96\)"):
        SparseLayerSpec(g.nodes[1], pes=4, lanes=5)
    binary = MatMulThreshold("b", BIPOLAR, np.ones((4, 8), dtype=np.uint8), None)
    assert "bipolar weights" in sparse_eligible(binary)
    with pytest.raises(ValueError, match="node 'b' has bipolar weights"):
        SparseLayerSpec(binary, pes=2)
    many = MatMulThreshold("m", U2, np.arange(-256, 256).reshape(16, 32), None, weight_dtype=DataType.int(10))
    with pytest.raises(ValueError, match=r"node 'm' has 511 distinct non-zero weights.*--share 16"):
        SparseLayerSpec(many, pes=2)


def test_schedule_round_trips_the_engine_and_names_bad_fields():
    g = sparse_mlp()
    s = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 8, 4, engine="sparse", depth=4, act_density=0.3),
                                    LayerFolding("fc1", 4, 4), LayerFolding("fc2", 2, 2)))
    back = Schedule.from_json(s.to_json())
    assert back == s
    assert isinstance(back.apply(g)[0], SparseLayerSpec) and isinstance(back.apply(g)[1], MVTUSpec)
    assert back.apply(g)[0].depth == 4
    doc = json.loads(s.to_json())
    doc["layers"][0]["engine"] = "systolic"
    with pytest.raises(LowbitError, match=r"x.json: field 'layers\[0\].engine' must be 'mvtu' or 'sparse'"):
        Schedule.from_json(json.dumps(doc), source="x.json")
    doc["layers"][0]["engine"], doc["layers"][0]["act_density"] = "sparse", 1.5
    with pytest.raises(LowbitError, match=r"'layers\[0\].act_density' must be a number in \(0, 1\]"):
        Schedule.from_json(json.dumps(doc), source="x.json")
    bad = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 5, 4, engine="sparse"), LayerFolding("fc1", 4, 4),
                                      LayerFolding("fc2", 2, 2)))
    with pytest.raises(LowbitError, match=r"layer 'fc0': PEs \(5\) must divide MH \(96\)"):
        bad.apply(g)


def test_sparse_engine_refused_for_binary_layers_in_a_schedule(random_graph):
    random_graph = random_graph(np.random.default_rng(0))
    layers = [LayerFolding(n.name, 1, 1) for n in random_graph.nodes]
    layers[1] = LayerFolding(layers[1].name, 1, 1, engine="sparse")
    with pytest.raises(LowbitError, match=f"layer '{layers[1].name}': node '{layers[1].name}' has bipolar weights"):
        Schedule("pynq-z2", 100.0, tuple(layers)).apply(random_graph)


# -- the mapper places layers and says why -----------------------------------------------------------

def test_mapper_places_pruned_layers_on_the_sparse_engine_when_cheaper():
    g = sparse_mlp(sizes=(256, 256, 128, 10), density=0.08)
    s = search_folding(g, "pynq-z2", budget=0.1, act_density=0.3)
    engines = [layer.engine for layer in s.layers]
    assert "sparse" in engines
    reasons = placement_reasons(g, s, act_density=0.3)
    assert [r["engine"] for r in reasons] == engines
    for r in reasons:
        if r["engine"] == "sparse":
            assert r["reason"].startswith("sparse: sparse engine N=")
            assert "the sparse engine is cheaper" in r["reason"]
            assert r["sparse_cycles"] <= s.report(g)["cycles_per_image"]
    # the same graph with the sparse engine switched off: all MVTUs, and it costs more of the board
    dense = search_folding(g, "pynq-z2", budget=0.1, act_density=None)
    assert {layer.engine for layer in dense.layers} == {"mvtu"}
    assert dense.report(g)["cycles_per_image"] >= s.report(g)["cycles_per_image"]


def test_dense_and_binary_layers_stay_on_the_mvtu_with_a_reason(random_graph):
    random_graph = random_graph(np.random.default_rng(0))
    s = search_folding(random_graph, "pynq-z2", budget=0.5)
    assert {layer.engine for layer in s.layers} == {"mvtu"}
    reasons = placement_reasons(random_graph, s)
    assert all(r["engine"] == "mvtu" for r in reasons)
    assert any("bipolar weights" in r["reason"] for r in reasons)
    rng = np.random.default_rng(5)
    dense = IntegerGraph(U4, (MatMulThreshold("d", U4, rng.integers(-8, 8, size=(10, 32)), None,
                                              weight_dtype=INT4),))
    (r,) = placement_reasons(dense, search_folding(dense, "pynq-z2"))
    assert r["engine"] == "mvtu" and "above 50 %" in r["reason"]


def test_map_cli_prints_the_placement_and_writes_a_sparse_schedule(tmp_path, capsys):
    g = sparse_mlp(sizes=(256, 256, 128, 10), density=0.08)
    g.save(tmp_path / "m.npz")
    assert main(["map", str(tmp_path / "m.npz"), "--budget", "0.1", "--act-density", "0.3",
                 "-o", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "placement (dense MVTU or sparse engine, and why):" in out
    assert "sparse: sparse engine N=" in out
    doc = json.loads((tmp_path / "s.json").read_text())
    assert any(layer.get("engine") == "sparse" for layer in doc["layers"])
    assert main(["map", str(tmp_path / "m.npz"), "--budget", "0.1", "--no-sparse", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {layer["engine"] for layer in report["layers"]} == {"mvtu"}


# -- RTL: bit-exact, cycles as modelled ------------------------------------------------------------------

@pytest.mark.fast_sim
def test_sparse_layers_in_the_accelerator_are_bit_exact(tmp_path):
    """First, middle (MVTU) and last (scores) layers: sparse, mvtu, sparse; steady and throttled."""
    g = sparse_mlp()
    s = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 8, 4, engine="sparse"), LayerFolding("fc1", 4, 4),
                                    LayerFolding("fc2", 2, 2, engine="sparse")))
    compile_model(g, tmp_path / "c", schedule=s)
    x = np.random.default_rng(2).integers(0, 16, size=(60, 64))
    r = verify_compiled_fast(tmp_path / "c", x)
    assert r.mismatch is None
    assert [run["mismatched_images"] for run in r.runs] == [0, 0, 0]
    assert (r.labels == g.predict(x)).all()


@pytest.mark.fast_sim
def test_sparse_bottleneck_period_equals_the_cycle_model(tmp_path):
    """With the sparse layer as the bottleneck, the time between two results is the engine's
    modelled cycles for the second image's activations, exactly."""
    g = sparse_mlp(seed=1)
    s = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 16, 16), LayerFolding("fc1", 1, 4, engine="sparse"),
                                    LayerFolding("fc2", 10, 16)))
    report = compile_model(g, tmp_path / "c", schedule=s)
    assert report.mapping["bottleneck"] == "fc1"
    x = np.random.default_rng(3).integers(0, 16, size=(40, 64))
    fmt = report.stream_format
    with VerilatedModel.build(tmp_path / "c" / "lowbit_top.v") as model:
        model.reset()
        res = model.stream(input_words(fmt, x), len(x))
    spec = s.apply(g)[1]
    hidden = g.nodes[0].reference(x)
    modelled = np.array([spec.engine.timing(h).cycles for h in hidden])
    gaps = np.diff(res.out_cycles)
    assert (gaps[5:] == modelled[6:]).all(), (gaps[5:15], modelled[6:16])
    # the schedule's prediction uses random activations of the layer's act_density
    density = float((hidden != 0).mean())
    assert abs(spec.cycles(density) - modelled.mean()) / modelled.mean() < 0.1


def test_activation_profile_round_trips_and_is_checked():
    g = sparse_mlp()
    from lowbit.mapping.folding import activation_densities
    x = np.random.default_rng(4).integers(0, 16, size=(64, 64))
    mean = activation_densities(g, x)
    prof = activation_densities(g, x, per_column=True)
    assert set(mean) == set(prof) == {"fc0", "fc1", "fc2"}
    for name in mean:
        assert len(prof[name]) == g.nodes[["fc0", "fc1", "fc2"].index(name)].mw
        assert abs(np.mean(prof[name]) - mean[name]) < 1e-3
    s = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 8, 4, engine="sparse", act_density=prof["fc0"]),
                                    LayerFolding("fc1", 4, 4), LayerFolding("fc2", 2, 2)))
    back = Schedule.from_json(s.to_json())
    assert back.layers[0].act_density == tuple(round(v, 4) for v in prof["fc0"])
    assert back.apply(g)[0].cycles() > 0
    with pytest.raises(ValueError, match=r"node 'fc0': act_density must be a number in \(0, 1\] or 64 per-column"):
        SparseLayerSpec(g.nodes[0], pes=8, act_density=(0.5,) * 10)


@pytest.mark.fast_sim
def test_trained_pruned_model_maps_compiles_and_runs_bit_exact(tmp_path, capsys):
    """lowbit train (pruned 90 %, 16 shared weights) -> lowbit map --act-data digits (sparse placement,
    activation profile) -> lowbit compile --schedule -> lowbit sim --fast on the whole digits test
    split: bit-exact, and the measured cycles per image within 5 % of the schedule's prediction."""
    model, sched, out = tmp_path / "p.npz", tmp_path / "s.json", tmp_path / "c"
    assert main(["train", "--dataset", "digits", "--arch", "mlp:256,128", "--weights", "int:4", "--acts", "int:2",
                 "--prune", "0.9", "--share", "16", "--epochs", "6", "-o", str(model)]) == 0
    capsys.readouterr()
    # 6 % of the board: fc0 on the sparse engine at 2 PEs (at 5 %, since the MVTU cost model's refit
    # of issue 20 prices fc2 higher, fc0 gets 1 PE, whose density-based cycle estimate is 6 % low)
    assert main(["map", str(model), "--board", "pynq-z2", "--budget", "0.06", "--act-data", "digits",
                 "-o", str(sched), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [layer["engine"] for layer in report["layers"]][:2] == ["sparse", "sparse"]
    predicted = report["cycles_per_image"]
    assert main(["compile", str(model), "--schedule", str(sched), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["sim", str(out), "--fast", "--json", str(tmp_path / "sim.json")]) == 0
    sim = json.loads((tmp_path / "sim.json").read_text())
    runs = sim["runs"]
    assert all(run["mismatched_images"] == 0 for run in runs) and runs[0]["images"] == 450
    measured = runs[0]["cycles_per_image"]
    assert abs(measured - predicted) / measured < 0.05, (measured, predicted)


@pytest.mark.cocotb
def test_sparse_layers_under_cocotb_with_throttling(tmp_path):
    """The same cocotb testbench as every accelerator (driver, monitor, scoreboard against
    sw_reference) on a schedule with sparse layers first and last."""
    from lowbit.sim.accel_sim import RunSpec, simulate
    g = sparse_mlp(seed=2)
    s = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 4, 4, engine="sparse"), LayerFolding("fc1", 4, 8),
                                    LayerFolding("fc2", 5, 4, engine="sparse")))
    x = np.random.default_rng(6).integers(0, 16, size=(24, 64))
    runs = [RunSpec("steady"), RunSpec("throttled-seed7", 0.5, 0.4, 7)]
    report = simulate(g, s.apply(g), x, tmp_path, runs=runs)
    for run in report.runs:
        assert run["checked"] == len(x) and run["mismatched_images"] == 0, (run["name"], run["mismatches"])
    assert list(report.labels) == list(g.predict(x))
