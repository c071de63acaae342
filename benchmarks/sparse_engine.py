"""Sparse engine benchmark: load-balance efficiency, speed-up over a dense array, synthesis.

* **Efficiency** = ideal cycles ``nnz_active / N`` (non-zero weights in the columns of the non-zero
  activations, over the PEs) divided by the engine's cycles per vector (first input beat to last
  output beat), on random ``rows x cols`` layers, vs weight density and queue depth ``D`` in
  {1, 2, 4, 8, 16} (same layers and vectors for every ``D``). Cycles come from the cycle model
  (:mod:`lowbit.hw.sparse.cycle_model`), which the RTL equals exactly (``tests/test_sparse_cocotb.py``);
  a few points are also run through the RTL here (cocotb + Verilator) and must agree.
  ``entry rate`` is stored entries (padding included) per PE per cycle; the padding skip (a padding
  entry decoded together with its successor in the same memory word) can take it above 1.
  Ablations at D=8: one entry per word (no padding skip), 5- and 6-bit zero runs.
* **Speed-up** over a dense integer array with the same number of multipliers
  (``ceil(rows / N) * cols`` cycles per vector).
* **Resources**: yosys ``synth_xilinx`` (xc7) of the target-point engine.

Writes ``benchmarks/results/sparse_engine.{md,json,png}``.

    .venv/bin/python benchmarks/sparse_engine.py [--rows 1024 --cols 1024] [--no-synth] [--no-rtl]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from lowbit._io import atomic_write
from lowbit.hw.sparse.engine_spec import SparseEngineSpec
from lowbit.mapping.sparse_choice import dense_array_cycles
from lowbit.hw.sparse.cycle_model import column_walk, engine_cycles
from lowbit.sw_reference.sparse import encode_sparse

RESULTS = Path(__file__).resolve().parent / "results"
DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
DEPTHS = (1, 2, 4, 8, 16)
TARGET = {"density": 0.1, "pes": 16, "depth": 8, "act_density": 0.3}
ENTRIES_PER_WORD = 8
"""Entries per sparse-matrix word (EIE: 8 entries of 8 bits in a 64-bit word); the padding skip
works inside a word."""


def _layer(rng, rows, cols, density, pes, zero_bits=4):
    mask = rng.random((rows, cols)) < density
    idx = mask * rng.integers(1, 16, (rows, cols))
    return idx, encode_sparse(idx, np.arange(16), pes, zero_bits=zero_bits)


def sweep(rows, cols, pes, act_density, vectors, seed, lanes=4, zero_bits=4, entries_per_word=ENTRIES_PER_WORD):
    rows_out = []
    rng = np.random.default_rng(seed)
    for density in DENSITIES:
        idx, image = _layer(rng, rows, cols, density, pes, zero_bits)
        cnt, squashed = column_walk(image, entries_per_word)
        stored = image.column_entries().sum(axis=0)
        xs = [(rng.random(cols) < act_density).astype(np.int64) for _ in range(vectors)]
        for depth in DEPTHS:
            cyc, eff, eeff, comp = [], [], [], []
            for x in xs:
                t = engine_cycles(cnt, x, depth=depth, lanes=lanes, rows=rows, squashed=squashed)
                ideal = np.count_nonzero(idx[:, x != 0]) / pes
                cyc.append(t.cycles)
                comp.append(t.compute)
                eff.append(ideal / t.cycles)
                eeff.append(stored[x != 0].sum() / pes / t.cycles)
            dense = dense_array_cycles(rows, cols, pes)
            rows_out.append({"density": density, "depth": depth, "pes": pes, "act_density": act_density,
                             "zero_bits": zero_bits, "entries_per_word": entries_per_word,
                             "cycles": float(np.mean(cyc)),
                             "compute_cycles": float(np.mean(comp)), "efficiency": float(np.mean(eff)),
                             "entry_efficiency": float(np.mean(eeff)),
                             "padding_share": (image.total_entries - np.count_nonzero(idx)) / max(1, image.total_entries),
                             "dense_cycles": dense, "speedup": dense / float(np.mean(cyc))})
    return rows_out


def rtl_points(rows, cols, seed, workdir):
    """A few points through cocotb + Verilator: outputs == reference, cycles == model."""
    from lowbit.sim.sparse_sim import SparseLayer, SparseRun, simulate

    rng = np.random.default_rng(seed + 1)
    pes, depth = TARGET["pes"], TARGET["depth"]
    layers = []
    for density in (0.05, 0.1, 0.3):
        idx, _ = _layer(rng, rows, cols, density, pes)
        cb = np.concatenate([[0], rng.integers(-128, 128, 15)])
        xs = rng.integers(-2000, 2000, (3, cols)) * (rng.random((3, cols)) < TARGET["act_density"])
        layers.append(SparseLayer(encode_sparse(idx, cb, pes), xs))
    cap = max(layer.image.max_entries for layer in layers)
    spec = SparseEngineSpec(rows=rows, cols=cols, pes=pes, depth=depth, capacity=cap, shift=6,
                            entries_per_word=ENTRIES_PER_WORD)
    t0 = time.perf_counter()
    rep = simulate(spec, layers, workdir, runs=[SparseRun(f"density{k}", k) for k in range(len(layers))],
                   waves_on_failure=False)
    out = []
    for run, layer, density in zip(rep.runs, layers, (0.05, 0.1, 0.3)):
        model = [spec.timing(x, layer.image).cycles for x in layer.x]
        out.append({"density": density, "rows": rows, "cols": cols, "pes": pes, "depth": depth,
                    "rtl_cycles": run["cycles"], "model_cycles": model, "equal": run["cycles"] == model,
                    "mismatched_vectors": run["mismatched_vectors"]})
    return out, time.perf_counter() - t0


def synth(rows, cols, seed):
    from lowbit.hw.verilog import to_verilog
    from lowbit.tools.yosys import synth_cells, resources_from_cells

    rng = np.random.default_rng(seed)
    _, image = _layer(rng, rows, cols, TARGET["density"], TARGET["pes"])
    spec = SparseEngineSpec(rows=rows, cols=cols, pes=TARGET["pes"], depth=TARGET["depth"], capacity=image.max_entries,
                            entries_per_word=ENTRIES_PER_WORD)
    t0 = time.perf_counter()
    cells = synth_cells(to_verilog(spec.create(), "sparse_top"), "sparse_top")
    res = resources_from_cells(cells)
    return {"rows": rows, "cols": cols, "pes": spec.pes, "depth": spec.depth, "capacity": spec.capacity,
            "measured": res.as_dict(), "estimate": spec.resources().as_dict(),
            "seconds": time.perf_counter() - t0, "cells": cells}


def plot(rows_out, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for depth in DEPTHS:
        pts = [r for r in rows_out if r["depth"] == depth and _baseline(r)]
        a1.plot([100 * r["density"] for r in pts], [r["efficiency"] for r in pts], marker="o", label=f"D={depth}")
    a1.axhline(0.85, color="grey", ls="--", lw=0.8)
    a1.set_xscale("log")
    a1.set_xlabel("weight density (%)")
    a1.set_ylabel("efficiency (nnz_active / N / cycles)")
    a1.legend()
    a1.set_title(title)
    pts = [r for r in rows_out if r["depth"] == 8 and _baseline(r)]
    a2.plot([100 * r["density"] for r in pts], [r["speedup"] for r in pts], marker="o")
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("weight density (%)")
    a2.set_ylabel("speed-up over dense array (same multipliers)")
    a2.set_title("D=8")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    Path(path + ".tmp.png").replace(path)


def _baseline(r) -> bool:
    return r["zero_bits"] == 4 and r["entries_per_word"] == ENTRIES_PER_WORD


def _why(table, target, rows) -> str:
    """The reason the target point is where it is, from the numbers."""
    def at(**kw):
        return next(r for r in table if r["density"] == target["density"] and r["depth"] == 8
                    and all(r[k] == v for k, v in kw.items()))
    e1, z5 = at(zero_bits=4, entries_per_word=1), at(zero_bits=5, entries_per_word=ENTRIES_PER_WORD)
    per_pe = -(-rows // target["pes"])
    return (f"Where the cycles go at the target point: a PE spends one cycle per stored entry, and with 4-bit "
            f"zero runs every gap of more than 15 rows costs a padding entry; at {100 * target['density']:g} % "
            f"density over {per_pe} rows per PE, {100 * target['padding_share']:.1f} % of the stored entries are "
            f"padding. Without the padding skip (one entry per word) the efficiency is {e1['efficiency']:.3f}; "
            f"with {ENTRIES_PER_WORD} entries per word most padding entries are decoded together with their "
            f"successor and it is {target['efficiency']:.3f} (5-bit zero runs instead: {z5['efficiency']:.3f}). "
            f"The rest is load imbalance between the PEs, pipeline fill and the {per_pe}-beat output read-out. "
            f"Queue depth matters little at this density because the PEs, not the broadcast, are the bottleneck "
            f"(about {target['density'] * per_pe:.1f} entries per PE per non-zero activation); at 1-2 % density "
            f"the one-non-zero-per-cycle broadcast and the input beats (4 activations each) dominate instead.")


def write_report(report: dict) -> None:
    """Write the JSON, the PNG plot and the Markdown table of ``report`` under ``benchmarks/results``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write(RESULTS / "sparse_engine.json", json.dumps(report, indent=1))
    table, target = report["sweep"], report["target"]
    rtl_shape = (report["rtl"][0]["rows"], report["rtl"][0]["cols"]) if report.get("rtl") else (0, 0)
    plot(table, str(RESULTS / "sparse_engine.png"),
         f"{report['rows']}x{report['cols']}, N=16, {100 * TARGET['act_density']:g} % activations")
    lines = [
        f"# Sparse engine: {report['rows']}x{report['cols']} random layers, N=16 PEs, "
        f"{100 * TARGET['act_density']:g} % activation density, lanes 4",
        "",
        f"Target (10 % weights, 16 PEs, D=8, 30 % activations): efficiency **{target['efficiency']:.3f}** "
        f"({'meets' if report['meets_target'] else 'misses'} 0.85); stored entries per PE-cycle "
        f"{target['entry_efficiency']:.3f}; speed-up over a dense 16-multiplier array {target['speedup']:.1f}x.",
        "",
        "Cycles from the cycle model (equal to the RTL's, see below and tests/test_sparse_cocotb.py).",
        "",
        _why(table, target, report["rows"]),
        "",
        "| weight density | D | zero-run bits | entries/word | cycles/vector | efficiency | entry rate | padding share | dense cycles | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(f"| {100 * r['density']:g} % | {r['depth']} | {r['zero_bits']} | {r['entries_per_word']} | {r['cycles']:.1f} | "
                     f"{r['efficiency']:.3f} | {r['entry_efficiency']:.3f} | {100 * r['padding_share']:.1f} % | "
                     f"{r['dense_cycles']} | {r['speedup']:.1f}x |")
    if "rtl" in report:
        lines += ["", f"RTL points (cocotb + Verilator, {rtl_shape[0]}x{rtl_shape[1]}, N=16, D=8):", "",
                  "| weight density | RTL cycles | model cycles | equal | mismatched vectors |", "|---|---|---|---|---|"]
        for p in report["rtl"]:
            lines.append(f"| {100 * p['density']:g} % | {p['rtl_cycles']} | {p['model_cycles']} | {p['equal']} | "
                         f"{p['mismatched_vectors']} |")
    if "synth" in report:
        s = report["synth"]
        m, e = s["measured"], s["estimate"]
        lines += ["", f"yosys synth_xilinx (xc7) of the target engine ({s['rows']}x{s['cols']}, N={s['pes']}, "
                      f"D={s['depth']}, {s['capacity']} entries per PE):", "",
                  "| | LUT | FF | BRAM36 | DSP |", "|---|---|---|---|---|",
                  f"| yosys | {m['lut']} | {m['ff']} | {m['bram36']:g} | {m['dsp']} |",
                  f"| estimate (`SparseEngineSpec.resources()`) | {e['lut']} | {e['ff']} | {e['bram36']:g} | {e['dsp']} |"]
    atomic_write(RESULTS / "sparse_engine.md", "\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--cols", type=int, default=1024)
    ap.add_argument("--vectors", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--no-rtl", action="store_true")
    ap.add_argument("--rtl-rows", type=int, default=300)
    ap.add_argument("--rtl-cols", type=int, default=200)
    ap.add_argument("--report-only", action="store_true", help="rewrite the Markdown and plot from the JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.report_only:
        write_report(json.loads((RESULTS / "sparse_engine.json").read_text()))
        return 0
    t0 = time.perf_counter()
    table = sweep(args.rows, args.cols, TARGET["pes"], TARGET["act_density"], args.vectors, args.seed)
    # Ablations at D=8: no padding skip (one entry per word); 5- and 6-bit zero runs.
    for zb, epw in ((4, 1), (5, ENTRIES_PER_WORD), (6, ENTRIES_PER_WORD)):
        table += [r for r in sweep(args.rows, args.cols, TARGET["pes"], TARGET["act_density"], args.vectors,
                                   args.seed, zero_bits=zb, entries_per_word=epw) if r["depth"] == 8]
    t_model = time.perf_counter() - t0
    target = next(r for r in table if r["density"] == TARGET["density"] and r["depth"] == TARGET["depth"]
                  and _baseline(r))
    report = {"rows": args.rows, "cols": args.cols, "target": {**TARGET, **target},
              "meets_target": target["efficiency"] >= 0.85, "sweep": table, "model_seconds": t_model}
    if not args.no_rtl:
        pts, secs = rtl_points(args.rtl_rows, args.rtl_cols, args.seed, Path(tempfile.mkdtemp(prefix="lowbit-sparse-")))
        report["rtl"] = pts
        report["rtl_seconds"] = secs
    if not args.no_synth:
        report["synth"] = synth(args.rows, args.cols, args.seed)
    write_report(report)
    target = report["target"]
    logging.info("target efficiency %.3f (entry %.3f), speed-up %.1fx", target["efficiency"],
                 target["entry_efficiency"], target["speedup"])
    bad = [p for p in report.get("rtl", []) if not p["equal"] or p["mismatched_vectors"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
