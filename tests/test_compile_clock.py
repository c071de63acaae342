"""``lowbit compile --clock MHZ`` (issue 21): the target clock chooses each unit's pipeline depth.

The model is a binarized 64-32-10 MLP trained for three epochs on digits (about 1.5 s); on
ulx3s-85f the folding search gives fc0 PE 16 / SIMD 16 and fc1 PE 5 / SIMD 8 (XNOR lanes). The
expected depths are hard-coded from the Fmax estimates (ECP5 model, ``lowbit.hw.fmax``) the report
printed for each depth, worked by hand:

    fc0 (depth 0..4):                       61.5  81.3  81.3  96.9  96.9 MHz
    fc1 (depth 0..4):                       96.9 157.3 157.3 157.3 157.3 MHz
    label select after fc1 at depth 0/1-2/3+: 49.5  81.3  228.3 MHz (it follows the last unit)

At 70 MHz: fc0 needs depth 1 (81.3), fc1 itself depth 0 but the label select depth 1 (81.3): 1, 1.
At 90 MHz: fc0 needs depth 3 (96.9), the label select depth 3 (228.3): 3, 3.
(If the ECP5 coefficients are refitted, print the estimates again and redo this table.)
"""

import json
import logging

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.cli import main
from lowbit.flow import compile_model, verify_compiled_fast
from lowbit.mapping import Schedule
from lowbit.quant.data import load_digits_split
from lowbit.quant.train.binary_mlp import TrainConfig, train_binary_mlp

BOARD = "ulx3s-85f"
DEPTHS = {70.0: [1, 1], 90.0: [3, 3]}  # the table in the module docstring


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = load_digits_split()
    config = TrainConfig(hidden=(32,), epochs=3, seed=2)
    graph = train_binary_mlp(data.x_train, data.y_train, config).to_integer_graph()
    d = tmp_path_factory.mktemp("model")
    return graph, graph.save(d / "m.npz"), data.x_test[:200]


def _depths(report):
    return [u["pipeline"] for u in report.mapping["fmax"]["units"]]


@pytest.mark.parametrize("clock", sorted(DEPTHS))
def test_depths_chosen_for_the_clock(trained, tmp_path, clock):
    """Kills: compile not calling pipeline_for_clock (depths 0, 0), the label select left out of
    the last unit's choice (1, 0 and 3, 0), the clock not set (the report at 25 MHz)."""
    graph, _, _ = trained
    report = compile_model(graph, tmp_path / "out", board=BOARD, clock_mhz=clock)
    m = report.mapping
    assert [layer["pipeline"] for layer in m["layers"]] == DEPTHS[clock]
    assert _depths(report) == DEPTHS[clock] + [DEPTHS[clock][-1]]  # the label select follows fc1
    assert m["clock_mhz"] == clock and m["pipeline_depths"] == "chosen for the clock"
    assert m["fmax"]["meets_clock"] is True
    assert m["throughput_fps"] == clock * 1e6 / m["cycles_per_image"]
    saved = Schedule.load(tmp_path / "out" / "schedule.json")
    assert saved.clock_mhz == clock and [x.pipeline for x in saved.layers] == DEPTHS[clock]


def test_schedule_file_keeps_its_depths_unless_clock(trained, tmp_path):
    """Kills: --clock ignored with a schedule, and depths re-chosen without --clock."""
    graph, _, _ = trained
    first = compile_model(graph, tmp_path / "a", board=BOARD, clock_mhz=90.0)
    path = tmp_path / "a" / "schedule.json"
    kept = compile_model(graph, tmp_path / "b", schedule=path)
    assert [layer["pipeline"] for layer in kept.mapping["layers"]] == [3, 3]
    assert kept.mapping["clock_mhz"] == 90.0 and kept.mapping["pipeline_depths"] == "from the schedule"
    again = compile_model(graph, tmp_path / "c", schedule=path, clock_mhz=70.0)
    assert [layer["pipeline"] for layer in again.mapping["layers"]] == DEPTHS[70.0]
    assert first.verilog_sha256 != again.verilog_sha256


def test_no_fmax_model_sets_the_clock_and_warns(trained, tmp_path, caplog):
    """A Xilinx board: the clock is set, the depths stay, a warning says so (kills: an error, or
    the clock dropped)."""
    graph, _, _ = trained
    with caplog.at_level(logging.WARNING, logger="lowbit.flow.steps"):
        report = compile_model(graph, tmp_path / "out", board="pynq-z2", clock_mhz=150.0)
    assert report.mapping["clock_mhz"] == 150.0
    assert all(layer["pipeline"] == 0 for layer in report.mapping["layers"])
    assert report.mapping["pipeline_depths"] == "unchanged: no Fmax model for zynq-7000"
    (rec,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert rec.getMessage().startswith("clock_mhz (--clock) 150: no Fmax model for zynq-7000")


@pytest.mark.parametrize("value", [0, -5.0, float("nan"), 2000, "70", True])
def test_api_refuses_a_bad_clock(trained, tmp_path, value):
    graph, _, _ = trained
    with pytest.raises(LowbitError, match=r"^clock_mhz must be a number of MHz above 0 and at "
                                          r"most 1000, not "):
        compile_model(graph, tmp_path / "out", board=BOARD, clock_mhz=value)
    assert not (tmp_path / "out").exists()


def test_model_compile_takes_clock_mhz(trained, tmp_path):
    import lowbit

    _, path, _ = trained
    design = lowbit.load(path).compile(tmp_path / "out", board=BOARD, clock_mhz=70.0)
    assert _depths(design.report)[:2] == DEPTHS[70.0]


def _run(capsys, argv):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_prints_the_clock_and_writes_the_report(trained, tmp_path, capsys):
    """Kills: the summary without the target, the verdict or a unit's depth and estimate."""
    _, path, _ = trained
    out = tmp_path / "out"
    rc, text, err = _run(capsys, ["compile", str(path), "--board", BOARD, "-o", str(out),
                                  "--clock", "70"])
    assert rc == 0, err
    assert "images/s at 70 MHz on ulx3s-85f" in text
    assert "clock 70 MHz (pipeline depths chosen for the clock); estimated Fmax 81.3 MHz (fc0) " \
           "meets it" in text
    assert "fc0 1 (81.3 MHz), fc1 1 (157.3 MHz), label select 1 (81.3 MHz)" in text
    doc = json.loads((out / "report.json").read_text())
    assert doc["mapping"]["clock_mhz"] == 70.0 and doc["mapping"]["fmax"]["meets_clock"] is True


@pytest.mark.parametrize("value", ["0", "abc", "nan", "1001", "-3"])
def test_cli_refuses_a_bad_clock(trained, tmp_path, capsys, value):
    """Exit 2, at most three lines naming --clock, nothing written (kills: --clock without a
    type, so that 'abc' reaches the library)."""
    _, path, _ = trained
    rc, _, err = _run(capsys, ["compile", str(path), "-o", str(tmp_path / "out"),
                               f"--clock={value}"])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and 1 <= len(lines) <= 3 and "--clock" in err, err
    assert not (tmp_path / "out").exists()


def test_build_targets_the_schedule_clock(trained, tmp_path, monkeypatch):
    """``lowbit build`` of a directory compiled at 90 MHz puts the ECP5 PLL 25 -> 90 MHz in the
    shell (CLKI_DIV 5, CLKFB_DIV 18, CLKOP_DIV 7: tests/test_pll.py), its UART divider for 90 MHz;
    the LPF constrains the 25 MHz pin and nextpnr-ecp5 derives the PLL's 90 MHz (kills: the
    board's 25 MHz as the design's clock, as before)."""
    from lowbit.deploy import build as build_mod
    from lowbit.deploy import openflow

    graph, _, _ = trained
    compile_model(graph, tmp_path / "c", board=BOARD, clock_mhz=90.0)
    seen = {}

    class Stop(Exception):
        pass

    def no_yosys(work, *args, **kw):  # the constraints are written; stop before the tools
        seen["lpf"] = (work / "top.lpf").read_text()
        seen["shell"] = (work / "lowbit_uart_top.v").read_text()
        raise Stop

    monkeypatch.setattr(openflow, "synth_for_pnr", no_yosys)
    with pytest.raises(Stop):
        build_mod.build(tmp_path / "c", BOARD, tmp_path / "b")
    assert seen["lpf"].endswith('FREQUENCY PORT "clk" 25 MHZ;\n')
    assert "(781 clocks per bit)" in seen["shell"]  # 90e6 / 115200 = 781.25
    assert "EHXPLLL from the 25 MHz oscillator to 90 MHz" in seen["shell"]
    assert ".CLKI_DIV(32'd5)" in seen["shell"] and ".CLKFB_DIV(32'd18)" in seen["shell"]


@pytest.mark.fast_sim
def test_compiled_at_clock_runs_bit_exact_with_the_added_latency(trained, tmp_path,
                                                                 private_verilator_cache):
    """The design at 90 MHz (depths 3, 3, label select 3) on the fast Verilator path: bit-exact
    under stalls, cycles per image == the report's, and its first result exactly the added
    stages (3 + 3 + the label select's deepest) later than the same folding without a clock
    (kills: stages in the hardware the latency model does not count, or the reverse)."""
    graph, _, x = trained
    first, folds = {}, {}
    for name, clock in (("none", None), ("fast", 90.0)):
        report = compile_model(graph, tmp_path / name, board=BOARD, clock_mhz=clock)
        rep = verify_compiled_fast(tmp_path / name, x)
        assert rep.ok, rep.mismatch
        assert rep.cycles_per_image == report.cycles_per_image
        first[name] = (rep.first_output_cycle, report.mapping["pipeline_latency_cycles"])
        folds[name] = [(la["pe"], la["simd"]) for la in report.mapping["layers"]]
    assert folds["none"] == folds["fast"] == [(16, 16), (5, 8)]  # the same folding at both clocks
    # fc0 3 + fc1 3 + the label select's deepest for 5 scores a beat (max_label_pipeline(5) == 3)
    assert first["none"][1] == 0 and first["fast"][1] == 3 + 3 + 3
    assert first["fast"][0] - first["none"][0] == 3 + 3 + 3


def test_cli_refuses_clock_for_a_dag(tmp_path, capsys):
    """A DAG's units have no pipeline depths: exit 2 naming --clock and the DAG's node, nothing
    written (kills: the clock silently dropped for a DAG)."""
    from test_dag_cli import _residual

    path = _residual().save(tmp_path / "res.npz")
    rc, _, err = _run(capsys, ["compile", str(path), "-o", str(tmp_path / "out"),
                               "--clock", "70"])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert "clock_mhz (--clock) 70 applies to a chain; this model is a DAG (node 'add')" in err
    assert not (tmp_path / "out").exists()
