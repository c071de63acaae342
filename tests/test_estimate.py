"""lowbit.deploy.estimate on hand-made netlists and reports: which cells count for which unit, the
families' cell weights, ratios, and the shells' bounds on images/s (issue 18 point 5). The real
open-flow build is checked in test_build_flash."""

import json

import pytest

from lowbit import LowbitError
from lowbit.deploy.estimate import dma_throughput, estimate_vs_tool, netlist_cells, uart_throughput

ACCEL = "core.accel"


def _netlist(tmp_path, cells):
    path = tmp_path / "top.json"
    doc = {"modules": {"top": {"cells": {name: {"type": kind} for name, kind in cells}}}}
    path.write_text(json.dumps(doc))
    return path


def _mapping(**extra):
    def res(lut, ff, bram36=0, dsp=0):
        return {"lut": lut, "ff": ff, "bram36": bram36, "dsp": dsp}

    return {
        "layers": [
            {"name": "fc1", "resources": res(10, 4)},
            {"name": "fc10", "resources": res(8, 2, bram36=0.5)},
        ],
        "width_converters": [{"after": "fc1", "resources": res(0, 0)}],
        "label_select": {"resources": res(2, 1)},
        "resources": {k: {"used": v} for k, v in res(20, 7, bram36=0.5).items()},
        **extra,
    }


CELLS = [
    ("core.accel.fc1.a_LUT4_O", "LUT4"),
    ("core.accel.fc1.b_CCU2C", "CCU2C"),  # 2 LUT4 sites
    ("core.accel.fc10.c_LUT4_O", "LUT4"),  # fc10, not fc1
    ("core.accel.fc10.ram", "TRELLIS_DPR16X4"),  # 4 LUT4 sites
    ("core.accel.fc10.bram", "DP16KD"),  # 18 Kb
    ("core.accel.fc10.q", "TRELLIS_FF"),
    ("core.accel.label.d", "LUT4"),
    ("core.accel.e_LUT4_O", "LUT4"),  # the accelerator's own
    ("core.rx_LUT4_O", "LUT4"),  # the shell
    ("btn_n_LUT4_I3", "LUT4"),  # the shell's top
    ("$abc$123$lut", "LUT4"),  # an internal name
    ("core.accel.fc1.scope", "$scopeinfo"),  # not a cell of the device
]


def test_cells_go_to_the_longest_unit_path_followed_by_a_dot(tmp_path):
    scopes = [ACCEL, f"{ACCEL}.fc1", f"{ACCEL}.fc10", f"{ACCEL}.label"]
    cells = netlist_cells(_netlist(tmp_path, CELLS), "top", scopes)
    assert cells == {
        f"{ACCEL}.fc1": {"LUT4": 1, "CCU2C": 1},
        f"{ACCEL}.fc10": {"LUT4": 1, "TRELLIS_DPR16X4": 1, "DP16KD": 1, "TRELLIS_FF": 1},
        f"{ACCEL}.label": {"LUT4": 1},
        ACCEL: {"LUT4": 1},
        "shell": {"LUT4": 2},
        "(internal names)": {"LUT4": 1},
    }


def test_rows_count_lut4_sites_and_kb_and_divide_tool_by_estimate(tmp_path):
    rows = estimate_vs_tool(_mapping(), "ecp5", _netlist(tmp_path, CELLS), {"TRELLIS_COMB": 40},
                            top="top", accelerator=ACCEL)
    by = {(r["scope"], r["resource"], r["source"]): r for r in rows}
    # accelerator: LUT4 sites 1 + 2 + 1 + 4 + 1 + 1 = 10 against 20 LUT6-eq, in their own units
    lut = by["accelerator", "lut", "yosys"]
    assert (lut["estimate"], lut["tool"], lut["ratio"]) == (20, 10, 0.5)
    assert lut["estimate_unit"] == "LUT6-eq" and lut["tool_unit"].startswith("LUT4 (")
    bram = by["accelerator", "bram", "yosys"]
    assert (bram["estimate"], bram["tool"], bram["ratio"]) == (18.0, 18, 1.0)
    assert by["whole design", "lut", "nextpnr"]["tool"] == 40
    assert by["whole design", "lut", "nextpnr"]["ratio"] == 40 / 20
    assert by["whole design", "dsp", "nextpnr"]["ratio"] is None  # no estimate: no ratio
    assert by["fc1", "lut", "yosys"]["tool"] == 3 and by["fc10", "lut", "yosys"]["tool"] == 5
    assert by["fc10", "bram", "yosys"]["tool"] == 18 and ("fc1", "bram", "yosys") not in by
    assert by["fc10", "ff", "yosys"]["ratio"] == 1 / 2
    assert not any(r["scope"] == "dwc0" for r in rows)  # no converter on either side
    assert by["shell", "lut", "yosys"]["tool"] == 2 and by["shell", "lut", "yosys"]["ratio"] is None
    assert by["(internal names)", "lut", "yosys"]["tool"] == 1
    assert by["accelerator (other)", "lut", "yosys"]["tool"] == 1


def test_ice40_counts_every_flip_flop_primitive(tmp_path):
    cells = [(f"core.accel.fc1.q{k}", kind) for k, kind in
             enumerate(["SB_DFF", "SB_DFFE", "SB_DFFESR", "SB_DFFNESS", "SB_DFFR", "SB_LUT4", "SB_CARRY"])]
    rows = estimate_vs_tool(_mapping(), "ice40", _netlist(tmp_path, cells), {}, top="top", accelerator=ACCEL)
    by = {(r["scope"], r["resource"], r["source"]): r for r in rows}
    assert by["fc1", "ff", "yosys"]["tool"] == 5 and by["fc1", "lut", "yosys"]["tool"] == 1


def test_a_netlist_without_the_top_is_refused(tmp_path):
    with pytest.raises(LowbitError, match=r"top\.json: no cells of module 'other'"):
        netlist_cells(_netlist(tmp_path, CELLS), "other", [ACCEL])


def test_uart_bound_by_hand():
    # 784 binary pixels in 8-pixel beats: 98 beats of one byte; a 4-bit label and 10 scores of 12
    # bits: 124 bits = 16 bytes out. 115200 baud at 10 bits a byte: 11520 bytes/s
    t = uart_throughput(100.0, 1000, baud=115_200, in_bytes_per_image=98, out_bytes_per_image=16)
    assert t["shell"]["images_per_s"] == 11_520 / 98
    assert t["shell"]["one_at_a_time_images_per_s"] == 11_520 / (98 + 16)
    assert t["accelerator"]["images_per_s"] == 100e6 / 1000
    assert t["images_per_s"] == 11_520 / 98 and t["bound_by"] == "shell"
    fast = uart_throughput(0.001, 1000, baud=115_200, in_bytes_per_image=1, out_bytes_per_image=1)
    assert fast["images_per_s"] == 1.0 and fast["bound_by"] == "accelerator"


def test_dma_bound_is_the_slower_stream_of_the_mappers_report():
    mapping = {"cycles_per_image": 49, "input_stream_cycles": 98, "output_stream_cycles": 1}
    t = dma_throughput(100.0, mapping, 64)
    assert t["images_per_s"] == 100e6 / 98 and t["bound_by"] == "shell"
    assert t["shell"] == {"kind": "dma", "port_bits": 64, "input_stream_cycles": 98,
                          "output_stream_cycles": 1, "images_per_s": 100e6 / 98}
    t = dma_throughput(100.0, {**mapping, "cycles_per_image": 200}, 64)
    assert t["images_per_s"] == 100e6 / 200 and t["bound_by"] == "accelerator"
