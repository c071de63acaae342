"""Where the mapper puts a pruned fully connected layer: sparse engine or MVTU, against weight density.

For a 512x512 layer with 4-bit weight-shared (15 non-zero values) weights at densities from 2 % to
50 %, UINT2 inputs at 30 % activation density, and several cycle targets, the cheapest sparse-engine
folding and the cheapest MVTU folding that meet the target (the search's own candidates and
measure, :func:`lowbit.mapping.folding.layer_options`, share of a pynq-z2), and the choice. All
model figures (cycle models and the calibrated resource model), no synthesis.

Writes ``benchmarks/results/sparse_placement.{md,json}``.

    .venv/bin/python benchmarks/sparse_placement.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from lowbit.boards import get_board
from lowbit.hw.sparse.layer_spec import SparseLayerSpec
from lowbit.mapping.folding import cheapness, layer_options
from lowbit.ir import DataType, IntegerGraph, MatMulThreshold

OUT = Path(__file__).parent / "results"
ROWS = COLS = 512
DENSITIES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
TARGETS = (256, 1024, 4096)
ACT = 0.3


def layer(density: float, seed: int = 0) -> IntegerGraph:
    rng = np.random.default_rng(seed)
    values = rng.choice([v for v in range(-8, 8) if v], size=15, replace=False)
    w = np.where(rng.random((ROWS, COLS)) < density, rng.choice(values, size=(ROWS, COLS)), 0)
    u2 = DataType.uint(2)
    node = MatMulThreshold("fc", u2, w, None, weight_dtype=DataType.int(4))
    return IntegerGraph(u2, (node,))


def main() -> None:
    board = get_board("pynq-z2")
    rows, t0 = [], time.perf_counter()
    for d in DENSITIES:
        g = layer(d)
        options = layer_options(g, 0, None, ACT)
        for target in TARGETS:
            meet = [c for c in options if c.cycles <= target]

            def best(kind):
                pool = [c for c in meet if isinstance(c.spec, SparseLayerSpec) == kind]
                return min(pool, key=lambda c: cheapness(c.resources, board)) if pool else None

            s, m = best(True), best(False)
            row = {"density": d, "target": target}
            for name, c in (("sparse", s), ("mvtu", m)):
                row[name] = None if c is None else {
                    "pe": c.spec.pe, "simd": c.spec.simd, "cycles": c.cycles, "lut": c.resources.lut,
                    "bram36": c.resources.bram36, "dsp": c.resources.dsp,
                    "share": cheapness(c.resources, board)}
            if s and m:
                row["choice"] = "sparse" if row["sparse"]["share"] < row["mvtu"]["share"] else "mvtu"
            else:
                row["choice"] = "sparse" if s else "mvtu" if m else None
            rows.append(row)
    seconds = time.perf_counter() - t0
    OUT.mkdir(exist_ok=True)
    (OUT / "sparse_placement.json").write_text(json.dumps(rows, indent=2))
    lines = [f"# Sparse engine or MVTU for a {ROWS}x{COLS} pruned layer (pynq-z2, model figures)", "",
             f"4-bit shared weights (15 values), UINT2 inputs at {100 * ACT:.0f} % activation density. For each "
             "cycle target, the cheapest folding of each engine that meets it (share of the board summed over "
             "LUT/FF/BRAM36/DSP) and the mapper's choice.", "",
             "| density | target cycles | sparse (N, lanes): cycles, LUT, BRAM36, DSP | MVTU (PE, SIMD): cycles, LUT, "
             "BRAM36, DSP | choice |", "| --- | --- | --- | --- | --- |"]

    def cell(c):
        if c is None:
            return "none meets it"
        return f"({c['pe']}, {c['simd']}): {c['cycles']:,}, {c['lut']:,.0f}, {c['bram36']:g}, {c['dsp']:g}"

    for r in rows:
        lines.append(f"| {100 * r['density']:g} % | {r['target']:,} | {cell(r['sparse'])} | {cell(r['mvtu'])} | "
                     f"{r['choice']} |")
    lines += ["", f"{len(rows)} points in {seconds:.1f} s."]
    (OUT / "sparse_placement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
