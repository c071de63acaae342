"""ABC9 and wires named like bits (``N[i]``), and what a failing tool leaves behind.

yosys 0.70's ABC9 rebuilds bit ``i`` of wire ``N`` as a wire named ``N[i]``; a design with a wire
literally named so (Amaranth names the fields of an ``ArrayLayout`` view ``p[0]``, ``p[1]``, ...)
makes it assert or, worse, merge two bits into one net (``lowbit.tools.yosys``, module docstring).
The two small designs below are the smallest forms of it: ``ASSERTS`` stops plain ``synth_ecp5``,
``synth_ice40`` and ``synth_xilinx`` with ``count_id(wire->name) == 0``; ``MERGES`` gets through
them with two flip-flops driving one net. Each yosys run here takes a few seconds.
"""

import sys
from pathlib import Path

import pytest

from lowbit import LowbitError
from lowbit.tools import fpga
from lowbit.tools.yosys import (
    HIDE_INDEXED_NAMES,
    synth_cells,
    synth_commands,
    synth_for_pnr,
    yosys_command,
)

# wire x and a different 4-bit register literally named x[0]: ABC9 renames x onto "x[0]"
ASSERTS = r"""module top(input clk, input [7:0] a, input [3:0] b, output reg [7:0] y);
  reg [7:0] x;
  reg [3:0] \x[0] ;
  always @(posedge clk) begin x <= a; \x[0]  <= b; end
  always @(posedge clk) y <= {x[7:4] + \x[0] , x[3:0] ^ \x[0] };
endmodule
"""

# the same with x[1]: ABC9 names bit 1 of x and bit 0 of \x[1] both "x[1]" and joins them
MERGES = ASSERTS.replace(r"\x[0] ", r"\x[1] ")

FAMILIES = [
    ("ecp5", ()),
    ("ice40", ()),
    ("xilinx", ("-family", "xc7", "-noiopad")),
]


def _yosys(tmp_path: Path, verilog: str, commands: list[str]) -> None:
    """Run ``commands`` on ``verilog`` through :func:`run_logged` in ``tmp_path``."""
    (tmp_path / "design.v").write_text(verilog)
    script = "; ".join(["read_verilog design.v", *commands])
    fpga.run_logged(
        yosys_command() + ["-q", "-l", "yosys.log", "-p", script],
        tmp_path,
        "yosys",
        300,
        "yosys.out",
        tool_logs=("yosys.log",),
        keep=tmp_path / "kept",
    )


def test_synth_commands_split_the_script_around_map_luts():
    assert synth_commands("ecp5", "top", ("-json", "top.json")) == [
        "synth_ecp5 -json top.json -top top -run :map_luts",
        "rename -hide w:*]",
        "synth_ecp5 -json top.json -top top -run map_luts:",
        "check -assert",
    ]
    assert HIDE_INDEXED_NAMES == "rename -hide w:*]"
    with pytest.raises(LowbitError, match=r"^family 'gowin': expected one of ecp5, ice40, xilinx$"):
        synth_commands("gowin", "top")
    with pytest.raises(LowbitError, match=r"^options: -run is set by synth_commands"):
        synth_commands("ecp5", "top", ("-run", ":coarse"))


@pytest.mark.yosys
@pytest.mark.parametrize("family,options", FAMILIES, ids=[f for f, _ in FAMILIES])
def test_plain_synth_asserts_and_keeps_the_evidence(tmp_path, family, options):
    """The yosys bug itself, through the failure path: the assertion is quoted (it is only in
    yosys's -q log) and the log is kept. If this stops failing, yosys has been fixed."""
    synth = " ".join([f"synth_{family}", *options, "-top", "top"])
    with pytest.raises(LowbitError) as info:
        _yosys(tmp_path, ASSERTS, [synth])
    message = str(info.value)
    lines = message.splitlines()
    assert len(lines) == 2, message
    assert lines[0].startswith("yosys failed (exit status 1): ERROR: Assert `count_id(wire->name)")
    assert lines[1] == f"log: {tmp_path / 'kept' / 'yosys.log'}"
    assert "ERROR: Assert `count_id(wire->name) == 0' failed" in (
        tmp_path / "kept" / "yosys.log"
    ).read_text()


@pytest.mark.yosys
@pytest.mark.parametrize("family,options", FAMILIES, ids=[f for f, _ in FAMILIES])
def test_indexed_names_synthesise_with_abc9(tmp_path, family, options):
    _yosys(tmp_path, ASSERTS, synth_commands(family, "top", options))
    log = (tmp_path / "yosys.log").read_text()
    assert "Executing ABC9 pass" in log
    assert "conflicting drivers" not in log


@pytest.mark.yosys
def test_merged_bits_are_refused_by_check_and_avoided(tmp_path):
    """Plain synth_xilinx exits 0 on MERGES with two flip-flops on one net; ``check -assert``
    turns that into an error, and the renaming avoids it."""
    plain = ["synth_xilinx -family xc7 -noiopad -top top", "check -assert"]
    (tmp_path / "plain").mkdir()
    with pytest.raises(LowbitError, match=r"^yosys failed \(exit status 1\): ERROR: Found 1 prob"):
        _yosys(tmp_path / "plain", MERGES, plain)
    assert "multiple conflicting drivers for top.\\x [1]" in (
        tmp_path / "plain" / "kept" / "yosys.log"
    ).read_text()
    _yosys(tmp_path, MERGES, synth_commands("xilinx", "top", ("-family", "xc7", "-noiopad")))
    # 8 + 4 + 8 flip-flops, as written
    cells = synth_cells(MERGES, "top", abc9=True)
    assert sum(cells.get(c, 0) for c in ("FDRE", "FDSE", "FDCE", "FDPE")) == 20


@pytest.mark.yosys
def test_synth_for_pnr_writes_the_netlist(tmp_path):
    (tmp_path / "a.v").write_text(ASSERTS)
    synth_for_pnr(tmp_path, ["a.v"], "top", "ecp5", timeout=300)
    assert (tmp_path / "top.json").is_file()
    assert "TRELLIS_FF" in (tmp_path / "yosys_stat.txt").read_text()


def test_run_logged_quotes_the_error_and_keeps_the_log(tmp_path):
    """A tool that writes its ERROR line only to its own log (as yosys -q does): the message holds
    that line and the kept log's path; the log outlives the removed working directory."""
    work = tmp_path / "work"
    work.mkdir()
    script = "open('tool.log', 'w').write('step 1\\nERROR: it broke\\nERROR: again\\n'); exit(3)"
    cmd = [sys.executable, "-c", script]
    with pytest.raises(LowbitError) as info:
        fpga.run_logged(cmd, work, "the tool", 60, "tool.out", tool_logs=("tool.log",))
    lines = str(info.value).splitlines()
    assert lines[0] == "the tool failed (exit status 3): ERROR: it broke (and 1 more ERROR line(s))"
    assert len(lines) == 2 and lines[1].startswith("log: ")
    kept = Path(lines[1][len("log: ") :])
    assert kept.name == "tool.log" and kept.parent != work
    work_log = (work / "tool.log").read_text()
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    assert kept.read_text() == work_log
    assert (kept.parent / "tool.out").is_file()


def test_run_logged_without_error_line_quotes_the_last_line(tmp_path):
    cmd = [sys.executable, "-c", "print('a'); print('it went wrong'); exit(2)"]
    with pytest.raises(LowbitError) as info:
        fpga.run_logged(cmd, tmp_path, "the tool", 60, "tool.out", keep=tmp_path / "k")
    assert str(info.value) == (
        f"the tool failed (exit status 2): it went wrong\nlog: {tmp_path / 'k' / 'tool.out'}"
    )
