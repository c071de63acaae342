"""The same cocotb testbench on a second simulator: Icarus Verilog, checked against sw_reference
and against Verilator cycle for cycle.

The coroutines are those of ``lowbit.sim.tb_accel`` (as in ``test_cocotb_accel.py``); only the
simulator differs. ``SIM=icarus pytest -m cocotb`` runs the Verilator launchers on Icarus too.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.flow.steps import compile_model
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.tools import simulators as runner
from lowbit.sim.accel_sim import RunSpec, simulate

FOLDINGS = {
    "dwc-between-every-layer": [(2, 3), (3, 4), (2, 6)],
    "fully-folded": [(1, 1), (1, 1), (1, 1)],
}
RUNS = [RunSpec("steady"), RunSpec("throttled-seed7", 0.5, 0.4, 7)]


def _design(rng, random_graph, folding, n_images=20):
    graph = random_graph(rng)
    specs = [MVTUSpec(n, pe=pe, simd=simd) for n, (pe, simd) in zip(graph.nodes, FOLDINGS[folding])]
    return graph, specs, rng.integers(0, 17, (n_images, graph.input_size))


@pytest.mark.cocotb
@pytest.mark.parametrize("folding", list(FOLDINGS), ids=list(FOLDINGS))
def test_icarus_bit_exact_and_on_cycle_model(folding, rng, random_graph, tmp_path):
    graph, specs, x = _design(rng, random_graph, folding)
    report = simulate(graph, specs, x, tmp_path, runs=RUNS, simulator="icarus")
    assert (tmp_path / "sim_build_icarus" / "sim.vvp").is_file()
    assert not (tmp_path / "sim_build").exists()
    for run in report.runs:
        assert run["checked"] == len(x), run["name"]
        assert run["mismatched_images"] == 0, (run["name"], run["mismatches"])
        assert not run["timed_out"], run["name"]
    assert list(report.labels) == list(graph.predict(x))
    assert report.steady["cycles_per_image"] == max(s.cycles() for s in specs)


@pytest.mark.cocotb
def test_icarus_and_verilator_agree_cycle_for_cycle(rng, random_graph, tmp_path):
    graph, specs, x = _design(rng, random_graph, "dwc-between-every-layer")
    icarus = simulate(graph, specs, x, tmp_path, runs=RUNS, simulator="icarus")
    verilator = simulate(graph, specs, x, tmp_path, runs=RUNS, simulator="verilator")
    # Same work directory, one build directory per simulator.
    assert (tmp_path / "sim_build_icarus" / "sim.vvp").is_file()
    assert (tmp_path / "sim_build" / "lowbit_top").is_file()
    # Verilator made the top module's ports public (all cocotb touches), not every signal
    verilated = (tmp_path / "sim_build" / "Vtop__verFiles.dat").read_text().splitlines()[1]
    assert " --public-depth 1 " in verilated and "--public-flat-rw" not in verilated
    assert icarus.verilog_sha256 == verilator.verilog_sha256
    assert icarus.ok and verilator.ok
    assert icarus.labels == verilator.labels
    for a, b in zip(icarus.runs, verilator.runs, strict=True):
        for key in ("labels", "cycles_per_image", "first_output_cycle", "cycles_total", "outputs"):
            assert a[key] == b[key], (a["name"], key)
        assert a == b  # the whole record, throttled runs included


@pytest.mark.cocotb
def test_icarus_reports_a_wrong_design_with_layer_index_values_and_fst_waves(rng, random_graph, flip_last_layer_weight, tmp_path):
    graph = random_graph(rng)
    # Hardware built from a graph whose last layer differs in one weight bit from the reference.
    wrong = flip_last_layer_weight(graph, 2, 5)
    last = graph.nodes[-1]
    specs = [MVTUSpec(n, pe=1, simd=2) for n in wrong.nodes]
    x = rng.integers(0, 17, (20, graph.input_size))
    report = simulate(graph, specs, x, tmp_path, runs=[RunSpec("steady")], simulator="icarus")
    expected, got = graph.scores(x), wrong.scores(x)
    bad = np.flatnonzero((expected != got).any(axis=1))
    assert len(bad) > 0
    assert report.mismatches == len(bad)
    first = report.steady["mismatches"][0]
    assert first["item"] == int(bad[0])
    assert first["where"] == f"{last.name}.scores"
    assert first["index"] == 2
    assert (first["got"], first["expected"]) == (int(got[bad[0], 2]), int(expected[bad[0], 2]))
    assert report.waves is not None
    assert Path(report.waves).parent == tmp_path / "sim_build_icarus_waves"
    assert report.waves.endswith(".fst") and os.path.getsize(report.waves) > 0


@pytest.mark.cocotb
def test_sim_environment_variable_selects_icarus(rng, random_graph, tmp_path, monkeypatch):
    graph, specs, x = _design(rng, random_graph, "fully-folded", n_images=5)
    monkeypatch.setenv("SIM", "icarus")
    report = simulate(graph, specs, x, tmp_path, runs=[RunSpec("steady")])
    assert report.ok
    assert (tmp_path / "sim_build_icarus").is_dir() and not (tmp_path / "sim_build").exists()


@pytest.mark.cocotb
def test_cli_sim_on_icarus(rng, random_graph, tmp_path):
    graph = random_graph(rng)
    out = tmp_path / "build"
    compile_model(graph, out, budget=0.05)
    x = rng.integers(0, 17, (12, graph.input_size))
    np.savez(tmp_path / "x.npz", x=x)
    lowbit = Path(sys.executable).with_name("lowbit")
    proc = subprocess.run([lowbit, "sim", out, "--images", tmp_path / "x.npz", "--throttled", "6",
                           "--simulator", "icarus", "--json", tmp_path / "sim.json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads((tmp_path / "sim.json").read_text())
    assert r["simulator"] == "icarus" and r["mismatches"] == 0 and r["labels_equal_reference"] is True
    assert (out / "sim" / "sim_build_icarus").is_dir() and not (out / "sim" / "sim_build").exists()
    assert "PASS: bit-exact" in proc.stdout


def test_simulator_names_are_checked(monkeypatch):
    monkeypatch.delenv("SIM", raising=False)
    assert runner.resolve_simulator() == "verilator"
    assert runner.resolve_simulator("icarus") == "icarus"
    monkeypatch.setenv("SIM", "icarus")
    assert runner.resolve_simulator() == "icarus"
    assert runner.resolve_simulator("verilator") == "verilator"
    with pytest.raises(LowbitError, match=r"^simulator must be one of 'verilator', 'icarus', not 'iverilog'$"):
        runner.resolve_simulator("iverilog")
    monkeypatch.setenv("SIM", "questa")
    with pytest.raises(LowbitError, match=r"^SIM \(environment variable\) must be one of 'verilator', 'icarus', "
                                          r"not 'questa'$"):
        runner.resolve_simulator()


def test_missing_iverilog_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("iverilog") is None
    with pytest.raises(LowbitError, match=r"^iverilog: not found on PATH; simulator 'icarus' needs Icarus Verilog"):
        runner.build(tmp_path / "x.v", "x", tmp_path / "build", simulator="icarus")
