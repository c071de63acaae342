import dataclasses
import json
import re

import pytest

from lowbit import LowbitError
from lowbit.boards import BOARDS, Board, Pins, board_names, get_board, register_board


def test_pynq_z2_figures():
    b = get_board("pynq-z2")
    assert b.part == "xc7z020clg400-1"
    assert b.family == "zynq-7000"
    assert (b.lut, b.ff, b.bram36, b.uram, b.dsp) == (53_200, 106_400, 140, 0, 220)
    assert b.fabric_clock_mhz == 100.0
    assert "DS190" in b.source


@pytest.mark.parametrize("name, lut, ff, bram36, uram, dsp", [
    ("pynq-z1", 53_200, 106_400, 140, 0, 220),
    ("zedboard", 53_200, 106_400, 140, 0, 220),
    ("zybo-z7-20", 53_200, 106_400, 140, 0, 220),
    ("zybo-z7-10", 17_600, 35_200, 60, 0, 80),
    ("zc706", 218_600, 437_200, 545, 0, 900),
    ("ultra96-v2", 70_560, 141_120, 216, 0, 360),
    ("kv260", 117_120, 234_240, 144, 64, 1_248),
    ("zcu104", 230_400, 460_800, 312, 96, 1_728),
])
def test_anchor_table(name, lut, ff, bram36, uram, dsp):
    b = get_board(name)
    assert (b.lut, b.ff, b.bram36, b.uram, b.dsp) == (lut, ff, bram36, uram, dsp)


def test_every_board_names_its_source():
    for name, b in BOARDS.items():
        assert b.name == name
        assert b.source
        assert b.part.startswith(("xc7z", "xczu", "xck26", "ice40", "lfe5"))


def test_lookup_is_forgiving_about_spelling():
    assert get_board("PYNQ_Z2") is BOARDS["pynq-z2"]
    assert get_board(BOARDS["kv260"]) is BOARDS["kv260"]


def test_unknown_board():
    with pytest.raises(LowbitError, match=r"^unknown board 'pynq-z3'; known boards: (.+)$") as info:
        get_board("pynq-z3")
    listed = re.match(r"^unknown board 'pynq-z3'; known boards: (.+)$", str(info.value))[1].split(", ")
    assert listed == board_names()
    assert "pynq-z2" in listed


def test_boards_are_frozen_and_validated():
    b = get_board("pynq-z2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.lut = 1
    with pytest.raises(ValueError, match=r"^board 'x': lut must be a non-negative integer, not -1$"):
        dataclasses.replace(b, name="x", lut=-1)
    assert isinstance(dataclasses.replace(b, name="my-z2"), Board)


@pytest.mark.parametrize("name", ["pynq-z1", "pynq-z2", "zedboard", "zybo-z7-10", "zybo-z7-20", "arty-z7-20",
                                  "cora-z7-10", "zc706", "ultra96-v2", "zcu104", "kv260", "icebreaker",
                                  "ulx3s-85f"])
def test_the_listed_boards_are_registered(name):
    b = get_board(name)
    assert b.package and b.package in b.part.lower()
    assert b.ps in ("PS7", "ZynqMP", "none")
    if b.ps == "none":
        assert b.axi_hp_ports == 0 and b.axi_hp_width_bits is None and b.ddr_bandwidth_gbps is None
    else:
        assert b.axi_hp_ports == 4 and b.axi_hp_width_bits == {"PS7": 64, "ZynqMP": 128}[b.ps]
    if b.openfpgaloader_board:
        assert "openFPGALoader" in b.source


def test_ps_facts():
    assert get_board("pynq-z2").ps == "PS7"
    assert get_board("pynq-z2").ddr_bandwidth_gbps == 16.8
    assert get_board("ultra96-v2").ddr_bandwidth_gbps == 34.1  # LPDDR4 x32 at 1066 Mb/s
    assert get_board("pynq-z2").openfpgaloader_board == "pynq_z2"
    assert get_board("kv260").ps == "ZynqMP"
    assert get_board("zc706").speed_grade == "-2"
    assert get_board("ultra96-v2").package == "sbva484"


def test_open_flow_boards():
    ice = get_board("icebreaker")
    assert (ice.family, ice.ps, ice.lut_inputs, ice.lut, ice.block_ram_kbits, ice.dsp) == ("ice40", "none", 4,
                                                                                          5_280, 120, 8)
    ecp5 = get_board("ulx3s-85f")
    assert (ecp5.family, ecp5.lut_inputs, ecp5.lut, ecp5.block_ram_kbits, ecp5.dsp) == ("ecp5", 4, 83_640,
                                                                                       3_744, 156)
    assert ecp5.openfpgaloader_board == "ulx3s"
    # in the cost model's units: LUT4 / 1.6 LUT6 equivalents, block RAM in 36 Kb equivalents
    cap = ecp5.capacity()
    assert (cap.lut, cap.ff, cap.bram36, cap.dsp) == (52_275, 83_640, 104, 156)
    z2 = get_board("pynq-z2").capacity()
    assert (z2.lut, z2.ff, z2.bram36, z2.dsp) == (53_200, 106_400, 140, 220)


def test_board_validation_names_the_field():
    b = get_board("pynq-z2")
    with pytest.raises(ValueError, match=r"^board 'x': family must be one of zynq-7000, zynq-ultrascale\+, ice40, "
                                         r"ecp5, not 'virtex'$"):
        dataclasses.replace(b, name="x", family="virtex")
    with pytest.raises(ValueError, match=r"^board 'x': ps must be one of PS7, ZynqMP, none, not 'PS8'$"):
        dataclasses.replace(b, name="x", ps="PS8")
    with pytest.raises(ValueError, match=r"^board 'x': a board with ps 'none' cannot have 4 AXI-HP ports$"):
        dataclasses.replace(b, name="x", ps="none")
    with pytest.raises(ValueError, match=r"^board 'x': lut_inputs must be 4 or 6, not 5$"):
        dataclasses.replace(b, name="x", lut_inputs=5)


@pytest.fixture
def registry():
    """The board registry, restored afterwards."""
    saved = dict(BOARDS)
    yield BOARDS
    BOARDS.clear()
    BOARDS.update(saved)


def test_adding_a_board_is_one_record(registry, tmp_path, capsys):
    """One Board record, registered: `lowbit boards` lists it and `lowbit map` maps onto it."""
    from mapping_models import digits_mlp

    from lowbit.cli import main

    record = Board(name="my-z7-14", part="xc7z014sclg400-1", family="zynq-7000", package="clg400",
                   speed_grade="-1", ps="PS7", lut=40_600, ff=81_200, bram36=107, uram=0, dsp=170,
                   fabric_clock_mhz=125.0, axi_hp_ports=4, axi_hp_width_bits=64, source="DS190, xc7z014s")
    register_board(record)
    with pytest.raises(LowbitError, match=r"^a board named 'my-z7-14' is already registered$"):
        register_board(record)
    assert main(["boards"]) == 0
    assert any(line.startswith("my-z7-14 ") and "40600" in line for line in capsys.readouterr().out.splitlines())
    model = digits_mlp().save(tmp_path / "m.npz")
    assert main(["map", str(model), "--board", "MY_Z7_14", "-o", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "my-z7-14" in out
    assert json.loads((tmp_path / "s.json").read_text())["board"] == "my-z7-14"


# --- build-flow facts on the records: pins, Vivado board part, PS7 DDR part ----------------------

def test_build_flow_facts_are_on_the_records():
    ice, ecp5 = get_board("icebreaker"), get_board("ulx3s-85f")
    assert ice.pins.sites() == {"clk": "35", "uart_rx": "6", "uart_tx": "9", "btn_n": "10",
                                "led_err_n": "11", "led_busy_n": "37"}
    assert ecp5.pins.sites() == {"clk": "G2", "uart_rx": "M1", "uart_tx": "L4", "btn_n": "D6",
                                 "led_err_n": "B2", "led_busy_n": "C2"}
    assert "icebreaker.pcf" in ice.pins.source and "ulx3s_v20.lpf" in ecp5.pins.source
    assert get_board("pynq-z2").vivado_board_part == "*pynq-z2*"
    assert get_board("kv260").vivado_board_part == "*kv260_som*"
    assert get_board("zedboard").ddr_part == "MT41K128M16 JT-125"
    assert get_board("zybo-z7-20").ddr_part is None and get_board("ultra96-v2").ddr_part is None
    for b in BOARDS.values():
        assert b.has_ps == (b.ps != "none")
        assert b.is_open_flow == (b.family in ("ice40", "ecp5"))
        # every board has the facts its build flow reads
        assert (b.pins is not None) if b.is_open_flow else (b.vivado_board_part is not None)
    # plain data for `lowbit boards --json`
    json.dumps([b.as_dict() for b in BOARDS.values()])
    assert ecp5.as_dict()["pins"]["btn_n"] == "D6"


def test_build_flow_facts_are_validated():
    z2, ice = get_board("pynq-z2"), get_board("icebreaker")
    with pytest.raises(ValueError, match=r"^pins: btn_n must be a non-empty string, not ''$"):
        dataclasses.replace(ice.pins, btn_n="")
    refused = [
        (r"pins must be a Pins or None, not \{'clk': '35'\}", ice, {"pins": {"clk": "35"}}),
        (r"pins must be None on a zynq-7000 board \(they place the open-flow UART shell\), "
         r"not Pins\(", z2, {"pins": ice.pins}),
        (r"vivado_board_part must be a non-empty string or None, not ''", z2,
         {"vivado_board_part": ""}),
        (r"vivado_board_part must be None on a board with ps 'none', not '\*ice\*'", ice,
         {"vivado_board_part": "*ice*"}),
        (r"ddr_part must be None on a board with ps 'ZynqMP' \(only the PS7 takes one\), "
         r"not 'MT41K256M16 RE-125'", get_board("kv260"), {"ddr_part": "MT41K256M16 RE-125"}),
    ]
    for message, board, change in refused:
        with pytest.raises(ValueError, match=rf"^board 'x': {message}"):
            dataclasses.replace(board, name="x", **change)


def test_constraints_refuse_a_board_without_pins_naming_it():
    from lowbit.deploy.openflow import constraints

    bare = dataclasses.replace(get_board("ulx3s-85f"), name="bare-ecp5", pins=None)
    with pytest.raises(LowbitError, match=r"^board 'bare-ecp5' has no pin map for the UART shell; "
                                          r"open-flow boards with one: icebreaker, ulx3s-85f$"):
        constraints(bare)


# A 25F ULX3S (same PCB as the 85F, ulx3s_v20.lpf) with the error and busy LEDs moved to LED2 and
# LED3 (D2, D1), so the constraints can only have come from this record. LFE5U-25F: Lattice
# FPGA-DS-02012 ECP5 family data sheet, table 1.1 (24K LUT4, 56 EBR of 18 Kb = 1,008 Kb, 28 18x18
# multipliers).
MY_ECP5 = Board(name="my-ulx3s-25f", part="lfe5u-25f-6bg381c", family="ecp5", package="bg381",
                speed_grade="6", ps="none", lut=24_288, ff=24_288, bram36=0, uram=0, dsp=28,
                lut_inputs=4, bram_kbits=1_008, fabric_clock_mhz=25.0, openfpgaloader_board="ulx3s",
                pins=Pins(clk="G2", uart_rx="M1", uart_tx="L4", btn_n="D6", led_err_n="D2",
                          led_busy_n="D1", source="ulx3s_v20.lpf (LED2 D2, LED3 D1)"),
                source="LFE5U-25F: Lattice FPGA-DS-02012, table 1.1; Radiona ULX3S (25 MHz)")

# A Digilent Cora Z7-07S: xc7z007s, DS190 (14,400 LUTs, 28,800 FFs, 50 RAMB36, 66 DSP); Cora Z7
# reference manual (512 MB DDR3L, 16-bit, 1050 Mb/s, MT41K256M16 RE-125).
MY_ZYNQ = Board(name="my-cora-z7-07s", part="xc7z007sclg400-1", family="zynq-7000",
                package="clg400", speed_grade="-1", ps="PS7", lut=14_400, ff=28_800, bram36=50,
                uram=0, dsp=66, fabric_clock_mhz=100.0, ddr_bandwidth_gbps=16.8, axi_hp_ports=4,
                axi_hp_width_bits=64,
                vivado_board_part="*cora-z7-07s*", ddr_part="MT41K256M16 RE-125",
                source="xc7z007s: DS190; Digilent Cora Z7 reference manual")


def _compile_for(board: Board, out):
    """Map a small graph (16 -> 8 -> 4) onto ``board`` and write its Verilog (`lowbit compile`);
    the written ``report.json`` (as a dict) and the Verilog."""
    from mapping_models import mlp

    from lowbit.flow.steps import compile_model

    compile_model(mlp((16, 8, 4), seed=1), out, board=board.name)
    report = json.loads((out / "report.json").read_text())
    assert json.loads((out / "schedule.json").read_text())["board"] == board.name
    verilog = (out / "lowbit_top.v").read_text()
    assert re.search(r"^module lowbit_top\b", verilog, re.M)
    return report, verilog


def test_adding_an_open_flow_board_is_one_record(registry, tmp_path):
    """One ECP5 record with pins: the mapper maps onto it and the LPF carries its pins, with no
    other change to lowbit."""
    from lowbit.deploy.openflow import _nextpnr_device, constraints

    register_board(MY_ECP5)
    report, _ = _compile_for(get_board("MY_ULX3S_25F"), tmp_path / "c")
    assert report["mapping"]["board"] == "my-ulx3s-25f"
    name, lpf = constraints(get_board("my-ulx3s-25f"))
    assert name == "top.lpf" and lpf.startswith("# lowbit_uart_top on my-ulx3s-25f\n")
    for port, site in MY_ECP5.pins.sites().items():
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf
    assert 'SITE "B2"' not in lpf and 'FREQUENCY PORT "clk" 25 MHZ;' in lpf
    assert _nextpnr_device(MY_ECP5) == ["--25k", "--package", "CABGA381", "--speed", "6"]
    # and an iCE40 record's pins land in a PCF the same way
    ice = dataclasses.replace(get_board("icebreaker"), name="my-ice", pins=dataclasses.replace(
        get_board("icebreaker").pins, led_busy_n="39"))
    assert constraints(ice) == ("top.pcf", "# lowbit_uart_top on my-ice\nset_io clk 35\n"
                                           "set_io uart_rx 6\nset_io uart_tx 9\nset_io btn_n 10\n"
                                           "set_io led_err_n 11\nset_io led_busy_n 39\n")


def test_adding_a_zynq_board_is_one_record(registry, tmp_path):
    """One PS7 record with a board part and a DDR part: the mapper maps onto it and its Vivado plan
    names both, with no other change to lowbit."""
    from lowbit.deploy.vivado import vivado_plan_files

    register_board(MY_ZYNQ)
    report, verilog = _compile_for(get_board("my-cora-z7-07s"), tmp_path / "c")
    in_bits, out_bits = (int(re.search(rf"^\s*(?:input|output)\s+(?:wire\s+)?\[(\d+):0\]\s+{port}\b",
                                       verilog, re.M)[1]) + 1 for port in ("i__payload", "o__payload"))
    fmt = report["stream_format"]
    files, summary = vivado_plan_files(get_board("my-cora-z7-07s"), verilog, clock_mhz=100.0,
                                       in_bits=in_bits, out_bits=out_bits,
                                       beats_per_image=fmt["input_size"] // fmt["simd"])
    assert summary["part"] == "xc7z007sclg400-1" and summary["ps"] == "PS7"
    assert "create_project -force lowbit $proj_dir -part xc7z007sclg400-1" in files["build.tcl"]
    assert "get_board_parts -quiet -latest_file_version {*cora-z7-07s*}" in files["build.tcl"]
    assert "lappend cfg CONFIG.PCW_UIPARAM_DDR_PARTNO {MT41K256M16 RE-125}" in files["bd.tcl"]
    # without those facts the plan still builds, on the bare part and the PS7's default DDR settings
    bare = dataclasses.replace(MY_ZYNQ, name="bare-z7", vivado_board_part=None, ddr_part=None)
    files, _ = vivado_plan_files(bare, verilog, clock_mhz=100.0, in_bits=in_bits, out_bits=out_bits,
                                 beats_per_image=fmt["input_size"] // fmt["simd"])
    assert "-latest_file_version {-}" in files["build.tcl"] and "DDR_PARTNO" not in files["bd.tcl"]


def test_no_library_module_keys_facts_by_board_name():
    """Board facts live on the records: outside boards/, no dict literal is keyed by a board name
    and no comparison tests for one (defaults such as ``board="pynq-z2"`` are fine)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    names = set(BOARDS)
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in {".venv", "tests", "benchmarks", "docs", "build", "boards"} or \
                rel.parts[0].startswith("."):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            consts = node.keys if isinstance(node, ast.Dict) else \
                [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
            found += [f"{rel}:{c.lineno}: {c.value!r}" for c in consts
                      if isinstance(c, ast.Constant) and c.value in names]
    assert not found, found
