"""Open-flow bitstreams for real networks (issue 21): every design through ``lowbit build`` at the
default budget, one build at a time, with its time, peak memory, utilisation and Fmax, and the
mapper's build-size estimate (:mod:`lowbit.mapping.buildsize`) beside the measured time.

Designs (trained here with ``lowbit train``, fixed seeds; accuracy is not the point, the
size and the weight types are):

* ``demo``: the demo's all-binary 64-256-256-10 MLP (``flow.run_demo``'s model, ``--hidden
  256,256``);
* ``ternary``: ``mlp:256,256``, TERNARY weights, UINT2 activations, first and last layer INT8;
* ``w2a2``: the same with INT2 weights;
* ``cnv-small``: the small binary CNN (``--arch cnv-small``);
* ``pruned``: ``mlp:256,256``, INT4 weights pruned to 85 % sparsity (the sparse engine where the
  mapper picks it).

Each design is compiled (``lowbit compile``, timed apart: Amaranth elaboration) and then built from
the compiled directory (``lowbit build DIR``) in a child process whose wall time and peak resident
memory (``os.wait4``: the largest of the process and the tools it ran) are recorded, with the tools'
own times from ``build.json`` (``tool_seconds``). A failed build is recorded with its message.

``--calibrate`` adds builds at other budgets (the calibration points of the build-size model);
``--boards`` chooses the boards (ulx3s-85f and icebreaker by default; a design that does not fit a
board at its default budget is recorded as such, not built). Results accumulate in
``WORK/runs.json`` (a run already there is not repeated); the table is written to
``benchmarks/results/openflow.{md,json}`` and the calibration points to
``benchmarks/results/buildsize_calibration.json``::

    nice .venv/bin/python benchmarks/openflow.py --work /tmp/openflow [--calibrate]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lowbit import LowbitError
from lowbit._io import atomic_write
from lowbit.boards.records import get_board
from lowbit.ir.graph import IntegerGraph
from lowbit.mapping import search_folding
from lowbit.mapping.buildsize import coefficients, default_budget, design_size, estimate_build
from lowbit.quant.builtin import build as builtin_model

RESULTS = Path(__file__).resolve().parent / "results"

DESIGNS: dict[str, list[str]] = {
    "demo": ["--hidden", "256,256", "--epochs", "2"],
    "ternary": ["--weights", "TERNARY", "--acts", "UINT2", "--epochs", "2"],
    "w2a2": ["--weights", "INT2", "--acts", "UINT2", "--epochs", "2"],
    "cnv-small": ["--arch", "cnv-small", "--epochs", "1"],
    "pruned": ["--weights", "INT4", "--acts", "UINT2", "--prune", "0.85", "--epochs", "3"],
}
"""``lowbit train`` arguments of each design (seed 0, digits)."""

CALIBRATION: dict[str, list[float]] = {
    "demo": [0.05, 0.2],
    "cnv-small": [0.05],
    "w2a2": [0.2],
}
"""Budgets built on ulx3s-85f besides the default one: calibration points (``--calibrate``)."""

TIMEOUT_S = 3600
"""Each tool's timeout in the benchmark's builds."""


def lowbit_cmd() -> list[str]:
    """The ``lowbit`` command of the running Python's environment (the package it imports)."""
    return [sys.executable, "-c", "import sys; from lowbit.cli.app import main; sys.exit(main())"]


def run_measured(cmd: list[str], log: Path) -> tuple[int, float, float, float]:
    """Run ``cmd`` (its output in ``log``); return (exit status, wall seconds, CPU seconds, peak
    RSS in MiB), the last two of it and every process it waited for."""
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, time.perf_counter() - t0, cpu, usage.ru_maxrss / 1024


def train(work: Path, name: str) -> Path:
    model = work / f"{name}.npz"
    if not model.exists():
        subprocess.run(
            lowbit_cmd() + ["train", *DESIGNS[name], "--seed", "0", "-o", str(model)],
            check=True,
            capture_output=True,
        )
    return model


def run_one(work: Path, name: str, board: str, budget: float) -> dict:
    model = train(work, name)
    key = f"{name}@{board}@{budget:g}"
    row: dict = {"design": name, "board": board, "budget": budget, "key": key}
    graph = IntegerGraph.load(model)
    try:
        search_folding(graph, board, budget=budget)
    except LowbitError as e:
        row.update(status="does not fit", error=str(e))
        return row
    compiled, out = work / f"c_{key}", work / f"b_{key}"
    for d in (compiled, out):
        shutil.rmtree(d, ignore_errors=True)
    rc, secs, _, _ = run_measured(
        lowbit_cmd()
        + ["compile", str(model), "--board", board, "--budget", f"{budget:g}", "-o", str(compiled)],
        work / f"compile_{key}.log",
    )
    if rc:
        row.update(status="compile failed", error=(work / f"compile_{key}.log").read_text()[-400:])
        return row
    row["compile_s"] = round(secs, 1)
    report = json.loads((compiled / "report.json").read_text())
    row["size"] = design_size(report["mapping"]).to_dict()
    log = work / f"build_{key}.log"
    load = os.getloadavg()[0]
    rc, secs, cpu, peak = run_measured(
        lowbit_cmd()
        + ["build", str(compiled), "--board", board, "-o", str(out), "--timeout", str(TIMEOUT_S)],
        log,
    )
    row.update(
        build_s=round(secs, 1),
        cpu_s=round(cpu, 1),
        peak_rss_mib=round(peak, 1),
        load_before=round(load, 1),
        load_after=round(os.getloadavg()[0], 1),
    )
    if rc:
        row.update(status="build failed", error=log.read_text()[-600:])
        return row
    m = json.loads((out / "build.json").read_text())
    util = {k: v["used"] for k, v in m["utilisation"].items()}
    row.update(
        status="ok",
        tool_seconds=m.get("tool_seconds"),
        fmax_mhz=m["fmax_mhz"],
        clock_mhz=m["clock_mhz"],
        utilisation=util,
        cycles_per_image=m["cycles_per_image"],
        images_per_s_at_fmax=(m.get("throughput_at_fmax") or {}).get("accelerator"),
    )
    shutil.rmtree(out / "compiled", ignore_errors=True)
    return row


MIN_FACTOR = 1.5
"""The narrowest time range stated (``factor``), however well the points fit."""
MIN_MEMORY_FACTOR = 1.2
"""The smallest memory margin stated (``peak_mib_high = factor * peak_mib``)."""
COEFFICIENTS = Path(__file__).resolve().parents[1] / "mapping" / "buildsize.json"


MIN_LUT_SPAN = 2.0
"""The exponent is fitted only over sizes spanning this factor; over a narrower range the time is
taken as proportional to the LUTs (exponent 1)."""


def fit(points: list[dict]) -> dict:
    """The build-size model's coefficients per family (:mod:`lowbit.mapping.buildsize`): least
    squares of ``log cpu_seconds`` on ``log lut`` (the exponent fixed at 1 when the sizes span
    less than ``MIN_LUT_SPAN``) and of ``peak_mib`` on ``lut`` (its mean when the sizes are too
    close to fit a slope); each bound the smallest (rounded up to 0.1) that holds every point, at
    least ``MIN_FACTOR`` / ``MIN_MEMORY_FACTOR``. A family needs two points."""
    import numpy as np

    families = {}
    for family in sorted({p["family"] for p in points}):
        pts = [p for p in points if p["family"] == family]
        if len(pts) < 2:
            continue
        lut = np.array([p["size"]["lut"] for p in pts])
        secs = np.array([p["cpu_seconds"] for p in pts])
        peak = np.array([p["peak_mib"] for p in pts])
        if lut.max() >= MIN_LUT_SPAN * lut.min():
            exponent, log_scale = np.polyfit(np.log(lut), np.log(secs), 1)
            per_lut, base = np.polyfit(lut, peak, 1)
        else:
            exponent, log_scale = 1.0, float(np.mean(np.log(secs / lut)))
            per_lut, base = 0.0, float(peak.mean())
        pred = np.exp(log_scale) * lut**exponent
        ratio = np.maximum(secs / pred, pred / secs).max()
        mem = (peak / (base + per_lut * lut)).max()
        families[family] = {
            "seconds": {
                "scale": float(np.exp(log_scale)),
                "exponent": float(exponent),
                "factor": max(MIN_FACTOR, float(np.ceil(ratio * 10) / 10)),
            },
            "peak_mib": {
                "base": float(base),
                "per_lut": float(per_lut),
                "factor": max(MIN_MEMORY_FACTOR, float(np.ceil(mem * 10) / 10)),
            },
            "fitted_on": [p["key"] for p in pts],
            "lut_range": [float(lut.min()), float(lut.max())],
        }
    return {
        "note": "lowbit.mapping.buildsize: fitted by benchmarks/openflow.py --fit on the points of "
        "benchmarks/results/buildsize_calibration.json; seconds are CPU seconds of lowbit build "
        "(a core to itself)",
        "families": families,
    }


def _cells(row: dict) -> tuple[str, str, str]:
    u = row.get("utilisation", {})
    if row["board"].startswith("ulx3s") or "TRELLIS_COMB" in u:
        return (
            str(u.get("TRELLIS_COMB", "")),
            str(u.get("TRELLIS_FF", "")),
            str(u.get("DP16KD", 0)),
        )
    return (str(u.get("ICESTORM_LC", "")), "-", str(u.get("ICESTORM_RAM", 0)))


def table(rows: list[dict]) -> str:
    out = [
        "| design | board | budget | est. LUT6 | compile s | build s (wall) | yosys s | nextpnr s "
        "| build CPU s | estimated s (range) | peak MiB | est. MiB | LUT4 / LC | FF "
        "| DP16KD / EBR | Fmax MHz |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["status"] != "ok":
            out.append(
                f"| {r['design']} | {r['board']} | {r['budget']:g} | | | | | | | | | | | | | "
                f"{r['status']} |"
            )
            continue
        family = get_board(r["board"]).family
        est = estimate_build(r["size"]["lut"], family)
        lut, ff, ebr = _cells(r)
        ts = r.get("tool_seconds") or {}
        out.append(
            f"| {r['design']} | {r['board']} | {r['budget']:g} | {r['size']['lut']:,.0f} "
            f"| {r['compile_s']:.0f} | {r['build_s']:.0f} | {ts.get('yosys', 0):.0f} "
            f"| {ts.get('nextpnr', 0):.0f} | {r['cpu_s']:.0f} "
            f"| {est.seconds:.0f} ({est.seconds_low:.0f}-{est.seconds_high:.0f}) "
            f"| {r['peak_rss_mib']:.0f} | {est.peak_mib:.0f} | {lut} "
            f"| {ff} | {ebr} | {r['fmax_mhz']:.1f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True, help="models, builds, logs, runs.json")
    p.add_argument("--boards", default="ulx3s-85f,icebreaker")
    p.add_argument("--designs", default=",".join(DESIGNS))
    p.add_argument("--calibrate", action="store_true", help="also the calibration budgets")
    p.add_argument("--again", action="store_true", help="repeat runs already in runs.json")
    p.add_argument("--report-only", action="store_true", help="write the tables from runs.json")
    p.add_argument(
        "--fit", action="store_true", help="fit the build-size model to the calibration points"
    )
    args = p.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    store = work / "runs.json"
    runs: dict[str, dict] = json.loads(store.read_text()) if store.exists() else {}
    plan = [
        (d, b, default_budget(get_board(b)))
        for b in args.boards.split(",")
        for d in args.designs.split(",")
    ]
    if args.calibrate:
        plan += [(d, "ulx3s-85f", x) for d, xs in CALIBRATION.items() for x in xs]
    if not args.report_only:
        for design, board, budget in plan:
            key = f"{design}@{board}@{budget:g}"
            if key in runs and not args.again:
                continue
            print(f"{key}: building", flush=True)
            row = run_one(work, design, board, budget)
            print(f"{key}: {row['status']} {row.get('build_s', '')}", flush=True)
            runs[key] = row
            atomic_write(store, json.dumps(runs, indent=1))
    defaults = [
        runs[k]
        for d, b, x in plan
        if (k := f"{d}@{b}@{x:g}") in runs and x == default_budget(get_board(b))
    ]
    ok = [r for r in runs.values() if r["status"] == "ok"]
    RESULTS.mkdir(exist_ok=True)
    atomic_write(RESULTS / "openflow.json", json.dumps({"runs": defaults}, indent=1))
    calib = [
        {
            "key": r["key"],
            "family": get_board(r["board"]).family,
            "size": r["size"],
            "seconds": r["build_s"],
            "cpu_seconds": r["cpu_s"],
            "load": [r["load_before"], r["load_after"]],
            "tool_seconds": r.get("tool_seconds"),
            "peak_mib": r["peak_rss_mib"],
        }
        for r in ok
    ]
    atomic_write(RESULTS / "buildsize_calibration.json", json.dumps(calib, indent=1))
    if args.fit:
        atomic_write(COEFFICIENTS, json.dumps(fit(calib), indent=1) + "\n")
        coefficients.cache_clear()
    md = markdown(defaults, [r for r in runs.values() if r not in defaults])
    print(md)
    atomic_write(RESULTS / "openflow.md", md)
    return 0


def cnv_w1a1_line(board: str = "ulx3s-85f") -> str:
    """The smallest budget (in steps of 0.1) at which CNV-W1A1 fits ``board``, its LUT estimate
    and the build-size model's (extrapolated) estimate: part 3 of the issue, not built here."""
    graph = builtin_model("cnv-w1a1").graph
    for tenths in range(1, 11):
        try:
            schedule = search_folding(graph, board, budget=tenths / 10)
        except LowbitError:
            continue
        size = design_size(schedule.report(graph))
        est = estimate_build(size, get_board(board).family)
        return (
            f"CNV-W1A1 (BNN-PYNQ topology) first fits {board} at budget {tenths / 10:g}: "
            f"{size.lut:,.0f} LUT6-eq, {size.bram36:g} RAMB36-eq; build-size estimate "
            f"{est.summary()} (CPU), an underestimate beyond the calibrated sizes (issue 21: a "
            "21,131 LUT6-eq ternary MLP did not finish yosys within an hour). Not built in this "
            "run."
        )
    return f"CNV-W1A1 does not fit {board} at any budget."


def markdown(defaults: list[dict], others: list[dict]) -> str:
    """``openflow.md``: the builds at the default budget, the others (calibration), the designs
    that do not fit, the fitted model."""
    lines = [
        "# Open-flow bitstreams at the default budget (issue 21)",
        "",
        "`benchmarks/openflow.py`: each design trained with `lowbit train` (seed 0, digits),",
        "compiled, then built from the compiled directory with `lowbit build`, one build at a",
        "time, on a shared 2-core machine (load 10-15 from other work: wall-clock times are 3-4",
        "times the CPU times). Build s: wall clock of `lowbit build`; yosys/nextpnr s: their wall",
        "clock (`tool_seconds` in build.json); build CPU s: CPU seconds of the build and its",
        "tools; estimated s: `lowbit.mapping.buildsize` (CPU seconds, the stated range); peak",
        "MiB: largest resident set; LUT4 = nextpnr's TRELLIS_COMB (iCE40: ICESTORM_LC), FF =",
        "TRELLIS_FF, DP16KD (iCE40: ICESTORM_RAM); Fmax: nextpnr's, seed 1 (ulx3s-85f clock 25",
        "MHz, icebreaker 12 MHz).",
        "",
        table([r for r in defaults if r["status"] == "ok"]),
        "",
    ]
    misfits = [r for r in defaults if r["status"] != "ok"]
    if misfits:
        lines += ["Not built:", ""]
        lines += [f"* {r['key']}: {r['status']}: {r.get('error', '')}" for r in misfits]
        lines.append("")
    if [r for r in others if r["status"] == "ok"]:
        lines += [
            "Calibration builds at other budgets:",
            "",
            table([r for r in others if r["status"] == "ok"]),
            "",
        ]
    fam = coefficients()["families"]
    lines += ["Build-size model (`mapping/buildsize.json`):", ""]
    for name, c in fam.items():
        t, m = c["seconds"], c["peak_mib"]
        lines.append(
            f"* {name}: CPU seconds = {t['scale']:.4g} x LUT6-eq^{t['exponent']:.3g} "
            f"(within x{t['factor']:g}), peak MiB = {m['base']:.0f} + {m['per_lut']:.3g} x "
            f"LUT6-eq (at most x{m['factor']:g}), fitted on {len(c['fitted_on'])} builds of "
            f"{c['lut_range'][0]:,.0f}-{c['lut_range'][1]:,.0f} LUT6-eq"
        )
    lines += ["", cnv_w1a1_line()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
