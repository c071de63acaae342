"""The open-flow shell's PLL (issue 21): a bitstream built for a clock runs at it.

* the divider search (:func:`lowbit.hw.axi.pll.plan_pll`) against hand-worked settings, and against
  the PyPI tools (``yowasp-ecppll``, ``yowasp-icepll``) whose search it repeats;
* refusals: outside the PLL's output range, or more than 1 % off (``lowbit build --clock``: exit 2);
* the shell: no PLL at the oscillator's frequency (the Verilog byte for byte as before, pinned by
  tests/test_golden.py), the PLL's instance with those dividers otherwise, and the design held in
  reset until the PLL's LOCK (Verilator, a PLL model that locks after 100 cycles);
* real builds: ulx3s-85f at 75 MHz (EHXPLLL, nextpnr-ecp5 derives the 75 MHz constraint of the PLL's
  output) and icebreaker at 30 MHz (SB_PLL40_PAD).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from lowbit import LowbitError
from lowbit.boards import get_board
from lowbit.deploy.openflow import fabric_pll, uart_shell_verilog
from lowbit.flow.steps import compile_model
from lowbit.hw.axi.pll import plan_pll
from lowbit.tools.fpga import run_logged, tool_command

from mapping_models import mlp

LOWBIT = [sys.executable, "-m", "lowbit.cli"]


# -- the divider search ------------------------------------------------------------------------


def test_ecp5_dividers_hand_worked():
    """25 -> 100 MHz: CLKFB_DIV / CLKI_DIV = 100 / 25 = 4 with CLKI_DIV 1 (PFD 25 MHz); CLKOP_DIV 4-8
    keeps the VCO (100 * CLKOP_DIV) within 400-800 MHz, 6 puts it nearest 600. 25 -> 90 MHz:
    90 / 25 = 18 / 5 (PFD 5 MHz); CLKOP_DIV 5-8 gives VCO 450, 540, 630, 720: 7 (630) is nearest."""
    p = plan_pll("ecp5", 25.0, 100.0)
    assert p.primitive == "EHXPLLL"
    assert p.dividers == (("CLKI_DIV", 1), ("CLKFB_DIV", 4), ("CLKOP_DIV", 6))
    assert (p.pfd_mhz, p.vco_mhz, p.out_mhz) == (25.0, 600.0, 100.0)
    assert 400 <= p.vco_mhz <= 800 and p.pfd_mhz >= 3.125
    p = plan_pll("ecp5", 25.0, 90.0)
    assert p.dividers == (("CLKI_DIV", 5), ("CLKFB_DIV", 18), ("CLKOP_DIV", 7))
    assert (p.pfd_mhz, p.vco_mhz, p.out_mhz) == (5.0, 630.0, 90.0)
    p = plan_pll("ecp5", 25.0, 75.0)
    assert p.dividers == (("CLKI_DIV", 1), ("CLKFB_DIV", 3), ("CLKOP_DIV", 8))
    assert p.vco_mhz == 600.0


def test_ice40_dividers_hand_worked():
    """12 -> 30 MHz: the PFD must be 10-133 MHz, so DIVR 0 (12 MHz); 30 * 2**DIVQ within the VCO's
    533-1066 MHz is 960 (DIVQ 5), DIVF + 1 = 960 / 12 = 80. 12 -> 100 MHz: only DIVQ 3 keeps the
    VCO in range (800 MHz); 12 * 66 = 792 gives 99, 12 * 67 = 804 gives 100.5, the closer."""
    p = plan_pll("ice40", 12.0, 30.0)
    assert p.primitive == "SB_PLL40_PAD"
    assert p.dividers == (("DIVR", 0), ("DIVF", 79), ("DIVQ", 5), ("FILTER_RANGE", 1))
    assert (p.pfd_mhz, p.vco_mhz, p.out_mhz) == (12.0, 960.0, 30.0)
    p = plan_pll("ice40", 12.0, 100.0)
    assert p.dividers == (("DIVR", 0), ("DIVF", 66), ("DIVQ", 3), ("FILTER_RANGE", 1))
    assert (p.out_mhz, p.requested_mhz) == (100.5, 100.0)


def _ecppll(tmp_path, out_mhz):
    run_logged(tool_command("yowasp-ecppll") + ["-i", "25", "-o", f"{out_mhz:g}"], tmp_path,
               "ecppll", 120, "ecppll.log")
    text = (tmp_path / "ecppll.log").read_text()
    get = [int(re.search(rf"^{k}: (\d+)$", text, re.M).group(1))
           for k in ("Refclk divisor", "Feedback divisor", "clkout0 divisor")]
    return tuple(zip(("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"), get))


def _icepll(tmp_path, out_mhz):
    run_logged(tool_command("yowasp-icepll") + ["-i", "12", "-o", f"{out_mhz:g}"], tmp_path,
               "icepll", 120, "icepll.log")
    text = (tmp_path / "icepll.log").read_text()
    achieved = float(re.search(r"F_PLLOUT:\s+([\d.]+) MHz \(achieved\)", text).group(1))
    get = [int(re.search(rf"^{k}:\s+(\d+)", text, re.M).group(1)) for k in ("DIVR", "DIVF", "DIVQ")]
    return tuple(zip(("DIVR", "DIVF", "DIVQ"), get)), achieved


@pytest.mark.parametrize("out_mhz", [75, 90, 123, 150])
def test_ecp5_search_agrees_with_ecppll(tmp_path, out_mhz):
    assert plan_pll("ecp5", 25.0, out_mhz).dividers == _ecppll(tmp_path, out_mhz)


@pytest.mark.parametrize("out_mhz", [30, 48, 100, 16.5])
def test_ice40_search_agrees_with_icepll(tmp_path, out_mhz):
    p = plan_pll("ice40", 12.0, out_mhz)
    dividers, achieved = _icepll(tmp_path, out_mhz)
    assert p.dividers[:3] == dividers and round(p.out_mhz, 3) == achieved


@pytest.mark.parametrize("family,in_mhz,out_mhz,message", [
    ("ecp5", 25.0, 48.3, r"^clock 48\.3: the ECP5 PLL \(EHXPLLL\) makes at best 46\.875 MHz from the "
                         r"25 MHz oscillator, more than 1% off$"),
    ("ecp5", 25.0, 401, r"^clock 401: above the ECP5 PLL \(EHXPLLL\)'s output range of 3\.125-400 MHz$"),
    ("ice40", 12.0, 300, r"^clock 300: above the iCE40 PLL \(SB_PLL40_PAD\)'s output range of "
                         r"16-275 MHz$"),
    ("ice40", 12.0, 14, r"^clock 14: below the iCE40 PLL \(SB_PLL40_PAD\)'s output range"),
    ("ecp5", 25.0, 12.0, r"^clock 12: the ECP5 PLL \(EHXPLLL\) makes at best 12\.5 MHz"),
])
def test_plan_pll_refuses_what_it_cannot_make(family, in_mhz, out_mhz, message):
    with pytest.raises(ValueError, match=message):
        plan_pll(family, in_mhz, out_mhz, name="clock")


def test_one_percent_is_the_limit():
    """iCE40 12 -> 20.06 MHz: DIVQ 5 steps by 12 / 32 = 0.375 MHz; 19.875 (DIVF 52) is 0.92 % off,
    taken. ECP5 25 -> 12.64 MHz: with the PFD at least 3.125 MHz the closest output is 12.5 MHz
    (25 / 2, or 3.125 * 4), 1.1 % off: refused."""
    p = plan_pll("ice40", 12.0, 20.06)
    assert p.out_mhz == 19.875 and p.divider("DIVF") == 52
    with pytest.raises(ValueError, match=r"makes at best 12\.5 MHz"):
        plan_pll("ecp5", 25.0, 12.64)


# -- the shell ---------------------------------------------------------------------------------


def test_no_pll_at_the_oscillator_and_a_pll_otherwise():
    ulx3s, ice = get_board("ulx3s-85f"), get_board("icebreaker")
    assert fabric_pll(ulx3s, 25.0) is None and fabric_pll(ice, 12.0) is None
    assert fabric_pll(ulx3s, 25.1) is None  # the PLL's closest is 25 MHz: the oscillator itself
    assert fabric_pll(ulx3s, 75.0).dividers == (("CLKI_DIV", 1), ("CLKFB_DIV", 3), ("CLKOP_DIV", 8))
    assert fabric_pll(ice, 30.0).out_mhz == 30.0
    with pytest.raises(LowbitError, match=r"^clock_mhz \(--clock\) 48\.3: the ECP5 PLL \(EHXPLLL\) "
                                          r"makes at best 46\.875 MHz .* on ulx3s-85f$"):
        fabric_pll(ulx3s, 48.3)
    assert "EHXPLLL" not in uart_shell_verilog(40, 22, 25e6)
    assert "SB_PLL40" not in uart_shell_verilog(40, 22, 12e6)


def test_shell_instantiates_the_pll_with_its_dividers():
    pll = plan_pll("ecp5", 25.0, 75.0)
    text = uart_shell_verilog(40, 22, 75e6, pll=pll)
    assert "(651 clocks per bit)" in text  # 75e6 / 115200 = 651.04
    inst = text[text.index("EHXPLLL #("):]
    inst = inst[:inst.index(");")]
    for param, value in (("CLKI_DIV", 1), ("CLKFB_DIV", 3), ("CLKOP_DIV", 8), ("CLKOP_CPHASE", 4)):
        assert f".{param}(32'd{value})" in inst
    assert '.FEEDBK_PATH("CLKOP")' in inst and ".CLKI(clk)" in inst
    ice = uart_shell_verilog(40, 22, 30e6, pll=plan_pll("ice40", 12.0, 30.0))
    inst = ice[ice.index("SB_PLL40_PAD #("):]
    assert ".DIVF(32'd79)" in inst and ".DIVQ(32'd5)" in inst and ".PACKAGEPIN(clk)" in inst
    with pytest.raises(ValueError, match=r"^clk_hz must be the PLL's output \(75 MHz\), not 25000000"):
        uart_shell_verilog(40, 22, 25e6, pll=pll)


LOCK_AT, LOST_AT, RELOCK_AT = 100, 1600, 1650
"""Cycles at which the PLL model locks, loses lock and locks again."""


def _pll_model(pll) -> str:
    """An EHXPLLL that passes CLKI through, LOCK high from :data:`LOCK_AT` to :data:`LOST_AT` and
    from :data:`RELOCK_AT` on."""
    names = ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "CLKOP_CPHASE", "CLKOP_FPHASE")
    strings = ("CLKOP_ENABLE", "DPHASE_SOURCE", "FEEDBK_PATH", "INTFB_WAKE", "OUTDIVIDER_MUXA",
               "OUTDIVIDER_MUXB", "OUTDIVIDER_MUXC", "OUTDIVIDER_MUXD", "PLLRST_ENA", "STDBY_ENABLE")
    params = ", ".join([f"parameter {n} = 0" for n in names] + [f'parameter {n} = ""' for n in strings])
    ins = ("CLKFB", "CLKI", "ENCLKOP", "PHASEDIR", "PHASELOADREG", "PHASESEL0", "PHASESEL1",
           "PHASESTEP", "PLLWAKESYNC", "RST", "STDBY")
    return (f"module EHXPLLL #({params}) ({', '.join(f'input wire {p}' for p in ins)}, "
            "output wire CLKOP, output reg LOCK);\n"
            "  reg [11:0] n = 0;\n  initial LOCK = 0;\n  assign CLKOP = CLKI;\n"
            "  always @(posedge CLKI) begin\n    if (n != 12'hfff) n <= n + 1;\n"
            f"    LOCK <= (n >= {LOCK_AT} && n < {LOST_AT}) || n >= {RELOCK_AT};\n  end\n"
            "endmodule\n")


# a lowbit_top whose result is valid whenever it is out of reset: the shell's first byte out marks
# the cycle its reset ended
RESULT_OUT_OF_RESET = """module lowbit_top(input wire clk, input wire rst, input wire i__valid,
  output wire i__ready, input wire [39:0] i__payload, output wire o__valid, input wire o__ready,
  output wire [21:0] o__payload);
  assign i__ready = 1'b1; assign o__valid = !rst; assign o__payload = 22'h155;
endmodule
module pll_tb(input wire clk, input wire rx, output wire tx);
  lowbit_uart_top dut (.clk(clk), .btn_n(1'b1), .uart_rx(rx), .uart_tx(tx), .led_err_n(),
                       .led_busy_n());
endmodule
"""


@pytest.mark.fast_sim
def test_design_is_held_in_reset_until_the_pll_locks():
    """The first result byte's start bit comes after LOCK (cycle 100), its two-flop synchroniser
    and the 16-cycle power-on reset; without the PLL it comes right after the power-on reset.
    LOCK falling (cycle 1600, inside the first byte's bit 2, a 0 of 0x55) resets the shell: the
    line goes idle at once, and the next start bit comes 2 + 16 cycles after LOCK returns."""
    from lowbit.sim.fast import VerilatedModel

    pll = plan_pll("ecp5", 25.0, 75.0)
    tx = {}
    for name, shell in (("pll", uart_shell_verilog(40, 22, 75e6, pll=pll) + _pll_model(pll)),
                        ("none", uart_shell_verilog(40, 22, 75e6))):
        m = VerilatedModel.build(shell + RESULT_OUT_OF_RESET, top="pll_tb", in_stream=None,
                                 out_stream=None)
        m.poke("rx", 1)
        tx[name] = []
        for _ in range(RELOCK_AT + 100):
            tx[name].append(m.peek("tx"))
            m.step(1)
    first = {name: line.index(0) for name, line in tx.items()}
    assert first["none"] < 40
    assert LOCK_AT + 2 + 16 <= first["pll"] < LOCK_AT + 40, first
    div = 651  # 75 MHz / 115200 baud
    line = tx["pll"]
    assert first["pll"] + 2 * div < LOST_AT < first["pll"] + 3 * div and line[LOST_AT - 1] == 0
    idle = line.index(1, LOST_AT)
    assert idle < LOST_AT + 8 and all(line[idle:RELOCK_AT + 18])
    assert RELOCK_AT + 2 + 16 <= line.index(0, RELOCK_AT) < RELOCK_AT + 40


# -- lowbit build --clock -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The 16 -> 8 -> 4 MLP of tests/test_build_flash.py compiled for both open-flow boards."""
    root = tmp_path_factory.mktemp("pll")
    graph = mlp((16, 8, 4), seed=1)
    compile_model(graph, root / "ulx3s", board="ulx3s-85f", clock_mhz=75.0)
    compile_model(graph, root / "ice", board="icebreaker", clock_mhz=30.0)
    return root


def _build(*args):
    return subprocess.run(LOWBIT + ["build", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("board,clock,message", [
    ("ulx3s", "48.3", r"clock_mhz \(--clock\) 48\.3: the ECP5 PLL \(EHXPLLL\) makes at best "
                      r"46\.875 MHz"),
    ("ulx3s", "450", r"clock_mhz \(--clock\) 450: above the ECP5 PLL \(EHXPLLL\)'s output range"),
    ("ice", "280", r"clock_mhz \(--clock\) 280: above the iCE40 PLL \(SB_PLL40_PAD\)'s output range"),
])
def test_build_refuses_a_clock_the_pll_cannot_make(compiled, tmp_path, board, clock, message):
    name = {"ulx3s": "ulx3s-85f", "ice": "icebreaker"}[board]
    proc = _build(compiled / board, "--board", name, "-o", tmp_path / "b", "--clock", clock)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "b").exists()


def test_the_achieved_clock_is_the_builds(compiled, tmp_path, monkeypatch):
    """icebreaker at 100 MHz: the PLL makes 100.5 MHz, and the shell's UART divider is 100.5 MHz's
    (round(100.5e6 / 115200) = 872; 868 at the requested 100 MHz). Stops before yosys."""
    from lowbit.deploy import build as build_mod
    from lowbit.deploy import openflow

    class Stop(Exception):
        pass

    def no_yosys(work, *args, **kw):
        raise Stop((work / "lowbit_uart_top.v").read_text())

    monkeypatch.setattr(openflow, "synth_for_pnr", no_yosys)
    with pytest.raises(Stop) as stop:
        build_mod.build(compiled / "ice", "icebreaker", tmp_path / "b", clock_mhz=100.0)
    shell = stop.value.args[0]
    assert "(872 clocks per bit)" in shell
    assert "SB_PLL40_PAD from the 12 MHz oscillator to 100.5 MHz (requested 100 MHz" in shell


@pytest.mark.yosys
def test_ulx3s_build_at_75_mhz_runs_on_the_pll(compiled, tmp_path):
    """yosys + nextpnr-ecp5 (~50 s): EHXPLLL 25 -> 75 MHz in the shell, nextpnr derives the PLL
    output's constraint from it (the LPF constrains the 25 MHz pin), the UART divider is 75 MHz's."""
    out = tmp_path / "b"
    proc = _build(compiled / "ulx3s", "--board", "ulx3s-85f", "-o", out, "--clock", "75")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "build.json").read_text())
    assert (m["clock_mhz"], m["clock_requested_mhz"]) == (75.0, 75.0)
    pll = m["pll"]
    assert (pll["primitive"], pll["CLKI_DIV"], pll["CLKFB_DIV"], pll["CLKOP_DIV"]) == ("EHXPLLL", 1, 3, 8)
    assert m["throughput"]["accelerator"]["clock_mhz"] == 75.0
    shell = (out / "lowbit_uart_top.v").read_text()
    assert "(651 clocks per bit)" in shell and ".CLKFB_DIV(32'd3)" in shell
    assert 'FREQUENCY PORT "clk" 25 MHZ;' in (out / "top.lpf").read_text()
    assert "Input frequency of PLL 'core.pll' is constrained to 25.0 MHz" in (out / "nextpnr.log").read_text()
    fmax = json.loads((out / "nextpnr_report.json").read_text())["fmax"]
    assert len(fmax) == 1 and abs(next(iter(fmax.values()))["constraint"] - 75.0) < 0.01, fmax
    assert m["meets_clock"] == (m["fmax_mhz"] >= 75.0)


@pytest.mark.yosys
def test_icebreaker_build_at_30_mhz_runs_on_the_pll(compiled, tmp_path):
    """yosys + nextpnr-ice40 (~15 s): SB_PLL40_PAD 12 -> 30 MHz, placed on the clock pin's PLL."""
    out = tmp_path / "b"
    proc = _build(compiled / "ice", "--board", "icebreaker", "-o", out, "--clock", "30")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "build.json").read_text())
    assert m["clock_mhz"] == 30.0 and m["pll"]["DIVF"] == 79 and m["pll"]["DIVQ"] == 5
    assert m["utilisation"]["ICESTORM_PLL"]["used"] == 1
    assert "(260 clocks per bit)" in (out / "lowbit_uart_top.v").read_text()  # 30e6 / 115200
    assert "clock: SB_PLL40_PAD from the 12 MHz oscillator to 30 MHz (requested 30 MHz)" in proc.stdout
