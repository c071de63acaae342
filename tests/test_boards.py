import dataclasses
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
        assert b.part.startswith(("xc7z", "xczu", "xck26"))


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
