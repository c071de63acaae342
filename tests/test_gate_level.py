"""Issue 8: the synthesised 7-series netlist of an accelerator, simulated under cocotb, is bit-exact.
Issue 21: so is the synth_ecp5 netlist (the open flow's script)."""

import dataclasses
import json

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold
from lowbit.sim.accel_sim import RunSpec
from lowbit.sim.gatelevel import simulate_gate_level
from lowbit.tools.simulators import TOOL_TIMES

pytestmark = [pytest.mark.cocotb, pytest.mark.yosys]


@pytest.fixture(scope="module")
def design():
    rng = np.random.default_rng(7)
    n0 = MatMulThreshold("fc0", DataType.uint(3), rng.integers(0, 2, (8, 12)), rng.integers(-20, 20, (8, 1)))
    n1 = MatMulThreshold("fc1", BIPOLAR, rng.integers(0, 2, (4, 8)), None)
    graph = IntegerGraph(DataType.uint(3), (n0, n1))
    specs = [MVTUSpec(n0, pe=2, simd=4), MVTUSpec(n1, pe=2, simd=4)]
    return graph, specs, rng.integers(0, 8, (24, 12))


def test_netlist_is_bit_exact(design, tmp_path_factory):
    graph, specs, x = design
    work = tmp_path_factory.getbasetemp() / "gate_level"
    rep = simulate_gate_level(graph, specs, x, work,
                              runs=[RunSpec("steady"), RunSpec("throttled", 0.6, 0.5, 3, 12)])
    assert rep.ok and rep.mismatches == 0
    assert rep.runs[0]["images"] == 24 and rep.runs[0]["cycles_per_image"] == max(s.cycles() for s in specs)
    assert any(c.startswith("LUT") for c in rep.cells) and rep.cells.get("FDRE", 0) > 0  # a real netlist
    assert "RAM32M" in rep.netlist or "LUT" in open(rep.netlist).read()


def test_netlist_against_a_different_oracle_fails(design, tmp_path_factory):
    """The comparison can fail: the same netlist against an oracle with one weight flipped."""
    graph, specs, x = design
    last = graph.nodes[-1]
    w = last.weights.copy()
    w[1, 3] ^= 1
    wrong = IntegerGraph(graph.input_dtype, (graph.nodes[0], MatMulThreshold(last.name, BIPOLAR, w, None)))
    rep = simulate_gate_level(wrong, specs, x, tmp_path_factory.getbasetemp() / "gate_level",
                              runs=[RunSpec("steady")])
    assert not rep.ok and rep.mismatches > 0
    mm = rep.runs[0]["mismatches"][0]
    assert mm["where"] == "fc1.scores" and mm["index"] == 1 and mm["got"] != mm["expected"]


def _wrong_oracle(graph):
    last = graph.nodes[-1]
    w = last.weights.copy()
    w[1, 3] ^= 1
    return IntegerGraph(graph.input_dtype, (graph.nodes[0], MatMulThreshold(last.name, BIPOLAR, w, None)))


def test_ecp5_netlist_is_bit_exact(design, tmp_path_factory):
    graph, specs, x = design
    work = tmp_path_factory.getbasetemp() / "gate_level"
    rep = simulate_gate_level(graph, specs, x, work, family="ecp5",
                              runs=[RunSpec("steady"), RunSpec("throttled", 0.6, 0.5, 3, 12)])
    assert rep.ok and rep.mismatches == 0
    assert [r["images"] for r in rep.runs] == [24, 12]
    assert rep.runs[0]["cycles_per_image"] == max(s.cycles() for s in specs)
    # a real ECP5 netlist: LUT4s, flip-flops and carry chains, LUT RAM for the weights, no block RAM
    assert {"LUT4", "TRELLIS_FF", "CCU2C"} <= set(rep.cells) and "DP16KD" not in rep.cells
    assert rep.netlist.endswith("netlist_ecp5bram.v") and "TRELLIS_FF" in open(rep.netlist).read()
    # the build timed its tools (lowbit.tools.simulators.TOOL_TIMES), in order
    times = json.loads((work / "gl_build_verilator_ecp5bram" / TOOL_TIMES).read_text())
    assert [t["phase"] for t in times] == ["verilate", "compile", "run"]
    assert all(t["wall_s"] >= 0 and t["cpu_s"] >= 0 for t in times)


def test_ecp5_netlist_against_a_different_oracle_fails(design, tmp_path_factory):
    """The ECP5 comparison can fail: the same netlist against an oracle with one weight flipped."""
    graph, specs, x = design
    rep = simulate_gate_level(_wrong_oracle(graph), specs, x, tmp_path_factory.getbasetemp() / "gate_level",
                              family="ecp5", runs=[RunSpec("steady")])
    assert not rep.ok and rep.mismatches > 0
    mm = rep.runs[0]["mismatches"][0]
    assert mm["where"] == "fc1.scores" and mm["index"] == 1 and mm["got"] != mm["expected"]


def test_ecp5_block_ram_netlist_is_bit_exact(design, tmp_path_factory):
    """The weights in DP16KD (``weight_ram="block"``) at pipeline 5: the netlist as nextpnr gets it,
    each unit's weight-word register moved into its block's output register
    (lowbit.tools.bram_outreg), simulated with lowbit's DP16KD model, bit-exact under throttling.
    Without the move's REGMODE change (the registers removed but the block left at NOREG) the
    data arrive a cycle early and this fails (checked by hand)."""
    graph, specs, x = design
    specs = [dataclasses.replace(s, pipeline=5, weight_ram="block") for s in specs]
    work = tmp_path_factory.getbasetemp() / "gate_level_bram"
    rep = simulate_gate_level(graph, specs, x, work, family="ecp5",
                              runs=[RunSpec("steady"), RunSpec("throttled", 0.6, 0.5, 3, 12)])
    assert rep.ok and rep.mismatches == 0 and [r["images"] for r in rep.runs] == [24, 12]
    assert rep.runs[0]["cycles_per_image"] == max(s.cycles() for s in specs)
    assert rep.cells["DP16KD"] == 2
    text = open(rep.netlist).read()
    assert text.count('("OUTREG")') == 2  # each block's read register moved in


def test_unknown_family_is_refused(design, tmp_path):
    graph, specs, x = design
    with pytest.raises(LowbitError, match=r"^family must be one of 'xilinx', 'ecp5', not 'ice40'$"):
        simulate_gate_level(graph, specs, x, tmp_path, family="ice40")


# -- the CLI: `lowbit sim --gate-level [--family F]` (the simulation itself replaced: seconds) -----


def _compiled_dir(tmp_path, graph, board):
    from lowbit.mapping import search_folding

    d = tmp_path / board
    d.mkdir()
    graph.save(d / "model.npz")
    search_folding(graph, board).save(d / "schedule.json")
    return d


@pytest.mark.parametrize("board, flags, family", [
    ("ulx3s-85f", [], "ecp5"),  # the compiled board's family by default
    ("pynq-z2", [], "xilinx"),
    ("pynq-z2", ["--family", "ecp5"], "ecp5"),
])
def test_cli_gate_level_family(design, tmp_path, monkeypatch, capsys, board, flags, family):
    import lowbit.sim.gatelevel as gatelevel
    from lowbit.cli import main

    graph, _, x = design
    seen = {}

    def fake(graph, specs, x, workdir, *, runs, simulator, family):
        seen["family"] = family
        run = {"name": "steady", "images": len(x), "mismatched_images": 0, "mismatches": [],
               "cycles_per_image": 1, "timed_out": False, "labels": graph.predict(x).tolist()}
        return gatelevel.GateLevelReport((run,), str(workdir / "netlist.v"), {})

    monkeypatch.setattr(gatelevel, "simulate_gate_level", fake)
    d = _compiled_dir(tmp_path, graph, board)
    np.savez(tmp_path / "x.npz", x=x)
    res = tmp_path / "res.json"
    assert main(["sim", str(d), "--gate-level", *flags, "--images", str(tmp_path / "x.npz"),
                 "--json", str(res)]) == 0
    assert seen["family"] == family and json.loads(res.read_text())["family"] == family
    synthesis = gatelevel.FAMILIES[family].synthesis
    assert f"with {synthesis} and simulating" in capsys.readouterr().err


def test_cli_family_needs_gate_level(design, tmp_path, capsys):
    from lowbit.cli import main

    d = _compiled_dir(tmp_path, design[0], "ulx3s-85f")
    assert main(["sim", str(d), "--family", "ecp5", "--images", "3"]) == 2
    err = capsys.readouterr().err
    assert "--family chooses the synthesis of --gate-level; add --gate-level" in err and "Traceback" not in err
