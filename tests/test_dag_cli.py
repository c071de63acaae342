"""Issue 19 on the command line: ``lowbit map`` and ``lowbit compile`` of a DAG model (a residual
block built by hand, so the Verilator build stays small), ``lowbit sim --fast`` of the compiled
DAG bit-exact against the oracle, ``lowbit sim`` of it under cocotb (measured cycles per image ==
the mapper's), at gate level (yosys netlist under cocotb), ``compile --target-fps``, and the clean
refusals of what takes chains only yet (schedule files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lowbit.cli.app import main
from lowbit.flow import CompiledDesign
from lowbit.ir import Add, DataType, IntegerGraph, MatMulThreshold
from lowbit.mapping.dag import DagSchedule

U2 = DataType.uint(2)


def _residual() -> IntegerGraph:
    """input -> fc0 -> add(fc0, input) -> fc1 (scores): one fork, one join."""
    fc0 = MatMulThreshold("fc0", U2, np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0],
                                               [0, 0, 1, 1]]),
                          np.array([[1, 2, 3]] * 4), U2, DataType.int(2))
    add = Add("add", (U2, U2), np.array([1] * 4), np.array([2] * 4), np.array([[2, 4, 6]]), U2)
    fc1 = MatMulThreshold("fc1", U2, np.array([[1, 0, 1, -1], [-1, 1, 0, 1], [0, -1, 1, 0]]),
                          None, weight_dtype=DataType.int(2))
    return IntegerGraph(U2, (fc0, add, fc1), (4,), None, (("",), ("fc0", ""), ("add",)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _residual().save(tmp_path_factory.mktemp("dag") / "res.npz")


def test_map_a_dag(model, tmp_path, capsys):
    assert main(["map", str(model), "--board", "pynq-z2", "-o", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "add   Add" in out and "FIFO into add (input 1)" in out and "images/s" in out
    sched = DagSchedule.load(tmp_path / "s.json")
    assert [f.name for f in sched.nodes] == ["fc0", "add", "fc1"]
    assert main(["map", str(model), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "dag"
    assert [n["name"] for n in report["layers"]] == ["fc0", "add", "fc1"]
    assert report["cycles_per_image"] == max(report["units"].values())
    assert report["fifos"] == [{"node": "add", "input": 1, "depth": sched.fifos[0][2]}]
    # a slower target: a cheaper folding at exactly that many cycles
    assert main(["map", str(model), "--target-fps", "25000000", "--json"]) == 0
    slow = json.loads(capsys.readouterr().out)
    assert slow["cycles_per_image"] == 4 and slow["resources"]["lut"] < report["resources"]["lut"]


@pytest.mark.fast_sim
def test_compile_a_dag_and_check_it_on_the_fast_path(model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(model), "--board", "pynq-z2", "-o", str(out)]) == 0
    design = CompiledDesign.open(out)
    assert design.is_dag and design.report().mapping["kind"] == "dag"
    assert design.report().stream_format.classes == 3
    argv = ["sim", str(out), "--fast", "--images", "40", "--json", str(tmp_path / "s.json")]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["ok"] and summary["labels_equal_reference"] and summary["mismatch"] is None
    assert all(r["mismatched_images"] == 0 for r in summary["runs"])
    assert summary["cycles_predicted"]["estimate"] == design.report().cycles_per_image
    # measured == the model (a 3-beat shortcut FIFO for this 3-cycle branch measured 5/4 per image)
    assert summary["cycles_per_image_measured"] == design.report().cycles_per_image
    capsys.readouterr()
    # a build for another board says so (exit 2, no traceback)
    for argv, msg in (
        (["build", str(out), "--board", "icebreaker", "-o", str(tmp_path / "b")],
         "was compiled for pynq-z2, not icebreaker; compile it again with --board icebreaker"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err


@pytest.fixture(scope="module")
def compiled(model, tmp_path_factory):
    """The residual block compiled for the PYNQ-Z2."""
    out = tmp_path_factory.mktemp("dag_compiled") / "out"
    assert main(["compile", str(model), "--board", "pynq-z2", "-o", str(out)]) == 0
    return out


def _compiled_slower(model, out, max_cycles: int):
    """``model`` compiled by ``lowbit compile --target-fps``: the cheapest folding at
    ``max_cycles`` cycles per image at the PYNQ-Z2's 100 MHz instead of the fastest."""
    argv = ["compile", str(model), "--board", "pynq-z2", "-o", str(out)]
    assert main(argv + ["--target-fps", str(100e6 / max_cycles)]) == 0
    return out


@pytest.mark.fast_sim
def test_compile_a_dag_at_a_target_fps(model, tmp_path, capsys):
    """``lowbit compile --target-fps`` of a DAG: report.json's cycles per image == the target's
    (25 M images/s at 100 MHz: 4), and ``sim --fast`` measures them ==."""
    out = _compiled_slower(model, tmp_path / "slow", 4)
    report = CompiledDesign.open(out).report()
    assert report.cycles_per_image == 4 and report.mapping["throughput_fps"] == 25e6
    assert "4 cycles/image" in capsys.readouterr().out
    assert CompiledDesign.open(out).is_dag
    argv = ["sim", str(out), "--fast", "--images", "40", "--json", str(tmp_path / "s.json")]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["ok"] and summary["mismatch"] is None
    assert summary["cycles_per_image_measured"] == 4
    assert summary["cycles_predicted"]["estimate"] == 4


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator, cycles", [("verilator", 1), ("icarus", 4)])
def test_a_dag_under_cocotb(compiled, model, tmp_path, capsys, simulator, cycles):
    """``lowbit sim DIR`` (cocotb on the shipped Verilog) of a DAG: bit-exact in the steady and the
    throttled runs, labels == the reference, measured cycles per image == the DAG mapper's (the
    fastest folding, 1 cycle per image; and one at 4: fc0 SIMD 4, fc1 PE 3, an 8-beat FIFO)."""
    out = compiled if cycles == 1 else _compiled_slower(model, tmp_path / "slow", cycles)
    argv = ["sim", str(out), "--images", "24", "--throttled", "12", "--simulator", simulator]
    argv += ["--json", str(tmp_path / "s.json")]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert CompiledDesign.open(out).report().cycles_per_image == cycles
    assert summary["ok"] and summary["labels_equal_reference"] and summary["mismatches"] == 0
    assert summary["simulator"] == simulator
    assert [r["name"] for r in summary["runs"]] == ["steady", "throttled-seed1", "throttled-seed2"]
    assert [r["checked"] for r in summary["runs"]] == [24, 12, 12]
    assert summary["cycles_per_image_measured"] == cycles
    assert summary["cycles_predicted"] == {"estimate": cycles, "equal_per_image": True}
    assert f"measured {float(cycles)}, the DAG mapper's model {cycles}" in capsys.readouterr().out


@pytest.mark.cocotb
@pytest.mark.yosys
def test_a_dag_at_gate_level(compiled, tmp_path, capsys):
    """``lowbit sim DIR --gate-level`` of a DAG: the shipped Verilog synthesised by yosys
    (``synth_xilinx -nobram``, the compile board's family) and its netlist under cocotb, bit-exact
    in the steady and the throttled runs, 1 cycle per image measured (about 1 min)."""
    argv = ["sim", str(compiled), "--gate-level", "--images", "12", "--throttled", "6"]
    assert main(argv + ["--json", str(tmp_path / "g.json")]) == 0
    summary = json.loads((tmp_path / "g.json").read_text())
    assert summary["ok"] and summary["gate_level"] and summary["family"] == "xilinx"
    assert summary["mismatches"] == 0 and summary["label_mismatches"] == 0
    assert [r["checked"] for r in summary["runs"]] == [12, 6, 6]
    assert summary["runs"][0]["cycles_per_image"] == 1
    assert "PASS: the synthesised netlist is bit-exact" in capsys.readouterr().out


def test_a_dag_vivado_plan(compiled, tmp_path, capsys):
    """``lowbit build DIR --board pynq-z2`` of a DAG design: the Vivado plan around the compiled
    top, its Tcl dry run, the PYNQ driver, no weight ports, the DMA's stream cycles."""
    out = tmp_path / "plan"
    assert main(["build", str(compiled), "--board", "pynq-z2", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    m = json.loads((out / "build.json").read_text())
    assert m["flow"] == "vivado" and m["ps"] == "PS7" and m["weight_ports"] == []
    assert m["cycles_per_image"] == CompiledDesign.open(compiled).report().cycles_per_image
    assert m["plan_check"]["cells"] == 4 and m["plan_check"]["interfaces"] == [
        "m_axis", "s_axi", "s_axis"]
    assert "dry run of build.tcl and bd.tcl without Vivado: 4 cells" in stdout
    assert (out / "lowbit_top.v").read_text() == (compiled / "lowbit_top.v").read_text()
    assert (out / "driver" / "lowbit_driver.py").is_file() and (out / "build.sh").is_file()
    # one input beat of 4 x 2 bits and one result beat through the 64-bit AXI-HP port
    shell = m["throughput"]["shell"]
    assert (shell["kind"], shell["input_stream_cycles"], shell["output_stream_cycles"]) == (
        "dma", 1, 1)
    assert m["throughput"]["images_per_s"] == 100e6 / m["cycles_per_image"]


def test_a_dag_open_flow_bitstream(model, tmp_path, capsys):
    """``lowbit build MODEL --board icebreaker`` of a DAG model: compiled by the DAG mapper, then a
    real iCE40 bitstream (yosys + nextpnr + icepack, about 20 s), the estimate beside the tools'
    counts per node."""
    out = tmp_path / "ice"
    assert main(["build", str(model), "--board", "icebreaker", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    m = json.loads((out / "build.json").read_text())
    assert m["flow"] == "open" and m["part"] == "ice40up5k-sg48"
    assert (out / m["bitstream"]).stat().st_size > 100_000  # a whole UP5K image
    design = CompiledDesign.open(out / "compiled")
    assert design.is_dag and m["cycles_per_image"] == design.report().cycles_per_image
    assert 0 < m["utilisation"]["ICESTORM_LC"]["used"] <= 5280 and m["fmax_mhz"] > 0
    units = {r["scope"] for r in m["estimate_vs_tool"]}
    assert {"fc0", "add", "fc1"} <= units
    assert "bitstream top.bin" in stdout and "bound by the UART shell" in stdout


def test_dag_refusals(model, tmp_path, capsys):
    (tmp_path / "s.json").write_text("{}")
    for argv, msg in (
        (["compile", str(model), "--schedule", str(tmp_path / "s.json"), "-o", str(tmp_path / "o")],
         "a schedule file applies to a chain; "),
        (["map", str(model), "--schedule", str(tmp_path / "s.json")],
         "--schedule: not for a DAG model yet (node 'add')"),
        (["map", str(model), "--markdown", str(tmp_path / "m.md")], "--markdown: not for a DAG"),
        (["compile", str(model), "--target-fps", "2e8", "-o", str(tmp_path / "o")],
         "--target-fps 2e+08 is above the clock (100 MHz)"),
        (["compile", str(model), "--target-fps", "1e6", "--budget", "0.5", "-o",
          str(tmp_path / "o")], "--target-fps chooses the folding of a model file; drop --budget"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) <= 3
    assert not (tmp_path / "o").exists()


def test_open_compiled_takes_a_dag(compiled, model):
    """``lowbit.api.open_compiled`` of a DAG design (it called the chain-only ``load`` before)."""
    import lowbit.api

    c = lowbit.api.open_compiled(compiled)
    assert [n.name for n in c.model.graph.nodes] == [n.name for n in IntegerGraph.load(model).nodes]
    assert c.design.is_dag
