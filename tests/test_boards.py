import dataclasses
import json
import re

import pytest

from lowbit import LowbitError
from lowbit.boards import BOARDS, Board, board_names, get_board


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

    from lowbit.boards import register_board
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
