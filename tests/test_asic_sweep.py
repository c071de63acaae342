"""Issue 7: the ASIC view (gate-level area), the modelled energy, and design-space sweeps."""

import csv

import numpy as np
import pytest

from lowbit.cli import main
from lowbit.hw.verilog import to_verilog
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.mapping.energy import ENERGY_PJ, energy_per_inference
from lowbit.flow.sweep import pareto_front, run_sweep, sweep_points
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold


def test_energy_by_hand():
    w0 = np.ones((2, 4), dtype=np.uint8)
    g = IntegerGraph(BIPOLAR, (MatMulThreshold("a", BIPOLAR, w0, np.array([[2], [3]])),
                               MatMulThreshold("b", BIPOLAR, np.ones((3, 2), dtype=np.uint8), None)))
    e = energy_per_inference(g)
    a, b = e.layers
    assert (a.kind, a.macs, a.compares, a.weight_bits_read) == ("xnor", 8, 2, 8)
    # a: 8 one-bit adds + 2 compares of the 3-bit accumulator (range [0, 4] plus the threshold 5).
    assert a.compute_pj == pytest.approx(8 * 0.1 / 32 + 2 * 0.1 * 3 / 32)
    assert a.memory_pj == pytest.approx(8 / 32 * ENERGY_PJ["sram32"])
    assert (b.macs, b.compares) == (6, 0)
    assert e.input_pj == pytest.approx(4 / 32 * ENERGY_PJ["dram32"])
    off = energy_per_inference(g, off_chip={"a"})
    assert off.layers[0].memory_pj == pytest.approx(8 / 32 * ENERGY_PJ["dram32"])
    with pytest.raises(ValueError, match="'zz'"):
        energy_per_inference(g, off_chip={"zz"})


def test_energy_kinds_for_wide_weights(rng):
    n = MatMulThreshold("m", DataType.uint(4), rng.integers(-2, 2, (3, 5)), None, weight_dtype=DataType.int(2))
    e = energy_per_inference(IntegerGraph(DataType.uint(4), (n,)))
    assert e.layers[0].kind == "mult" and e.macs_by_kind() == {"mult": 15}


@pytest.mark.yosys
def test_asic_area_counts_gates_and_flip_flops(rng):
    from lowbit.tools.asic import TRANSISTORS_PER_FF, asic_area

    node = MatMulThreshold("fc", BIPOLAR, rng.integers(0, 2, (4, 8)), rng.integers(0, 9, (4, 1)))
    area = asic_area(to_verilog(MVTUSpec(node, pe=2, simd=4).create(), name="unit"), "unit")
    c = area.cells
    gates_t = 4 * c.get("$_NAND_", 0) + 4 * c.get("$_NOR_", 0) + 2 * c.get("$_NOT_", 0)
    assert area.gate_transistors == gates_t > 0
    assert area.flip_flops > 0 and area.transistors == gates_t + TRANSISTORS_PER_FF * area.flip_flops
    assert area.nand2_equivalents == area.transistors / 4


@pytest.fixture
def two_models(tmp_path, rng, random_graph):
    small = random_graph(rng, sizes=(16, 12, 4)).save(tmp_path / "small.npz")
    wide = random_graph(rng, sizes=(64, 32, 10), in_dtype=DataType.uint(8)).save(tmp_path / "wide.npz")
    return [str(small), str(wide)]


def test_sweep_local_rows_and_pareto(two_models):
    points = sweep_points(two_models, ["pynq-z2", "icebreaker"], budgets=[0.05, 0.5], target_fps=[1e5])
    assert len(points) == 2 * 2 * 3
    rows = run_sweep(points, workers=2)
    assert [(r["model"], r["board"], r["goal"], r["value"]) for r in rows] == \
        [(p.model, p.board, p.goal, p.value) for p in points]
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["throughput_fps"] > 0 and r["lut"] > 0 for r in ok)
    front = pareto_front(rows)
    for r in front:  # nothing feasible is strictly better on both axes
        assert not any(o["lut"] < r["lut"] and o["throughput_fps"] > r["throughput_fps"] for o in ok)
    # A bigger budget never gives a slower design.
    by = {(r["model"], r["board"], r["value"]): r for r in ok if r["goal"] == "budget"}
    for (m, b, v), r in by.items():
        if v == 0.05 and (m, b, 0.5) in by:
            assert by[(m, b, 0.5)]["throughput_fps"] >= r["throughput_fps"]


def test_sweep_keeps_infeasible_points_with_the_reason(two_models):
    rows = run_sweep(sweep_points(two_models[1:], ["icebreaker"], budgets=[1e-4]), workers=1)
    assert rows[0]["status"] == "infeasible" and "icebreaker" in rows[0]["reason"]


def test_sweep_on_a_dask_cluster_equals_local(two_models):
    import distributed
    points = sweep_points(two_models, ["pynq-z2"], budgets=[0.1, 0.7])
    local = run_sweep(points, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  scheduler_port=0) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        remote = run_sweep(points, scheduler=cluster.scheduler_address)
    assert remote == local


def test_sweep_cli_writes_csv_plot_and_json(two_models, tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", *two_models, "--boards", "pynq-z2,zedboard", "--budgets", "0.1,0.6",
                 "--workers", "1", "-o", str(out)]) == 0
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(rows) == 8 and {r["board"] for r in rows} == {"pynq-z2", "zedboard"}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto front" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--boards", "nosuch", "--budgets", "0.5"], "nosuch"),
    (["--budgets", "0.5,x"], "--budgets: expected a comma-separated list"),
    (["--budgets", "1.5"], "budget must lie in (0, 1], not 1.5"),
    ([], "at least one model, one board and one budget"),
])
def test_sweep_cli_errors(two_models, tmp_path, capsys, argv, message):
    assert main(["sweep", two_models[0], *argv, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
