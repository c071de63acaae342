"""Fmax and LUTs of the MVTU at every pipeline depth on ECP5-85F (issue 21: at least 150 MHz).

Each XNOR MVTU of ``benchmarks/fmax_model.py``'s grid (PE 2, MW = 4 SIMD, NF 16, so 64 weight
words that yosys puts in LUTs) in the same harness (shift-register input, registered XOR output),
synthesised once with yosys ``synth_ecp5`` as the open flow runs it, then placed and routed by
nextpnr-ecp5 (LFE5U-85F, CABGA381, speed 6, the ulx3s-85f) with three seeds at a 250 MHz target.
One tool run at a time. Per point: the mean and the spread of nextpnr's achieved Fmax, the ECP5
cells, and the start and end of the critical path nextpnr reports (seed 1).

LUT per binary lane: ``PE`` XNOR-popcount lanes alone (the bank of
``benchmarks/synth_resources.py``, registered inputs and counts) through yosys ``synth_xilinx``
(LUT6, the 1.38-1.50 figure of ``benchmarks/results/synth_resources.md``), with the register
inside the tree (``pipeline=3``: :func:`lowbit.hw.fmax.popcount_cut`) and without it (depths 0-2
leave the lanes as they are).

Records every run in ``benchmarks/results/fmax_pipeline.json`` as it goes (a rerun skips what is
recorded) and writes ``benchmarks/results/fmax_pipeline.md``::

    .venv/bin/python benchmarks/fmax_pipeline.py [--points 16:0,16:3,...] [--seeds 1 2 3]
        [--table-only]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import sys
import tempfile
import time
from pathlib import Path

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fmax_model import DEVICES, NEXTPNR, PE, Harness, make_spec  # noqa: E402

from lowbit._io import atomic_write  # noqa: E402
from lowbit.hw.fmax import estimate_fmax, popcount_cuts  # noqa: E402
from lowbit.hw.mvtu.mac import popcount  # noqa: E402
from lowbit.hw.verilog import to_verilog  # noqa: E402
from lowbit.tools.fpga import run_logged, tool_command  # noqa: E402
from lowbit.tools.yosys import resources_from_cells, synth_cells, synth_for_pnr  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "fmax_pipeline.json"
TABLE = ROOT / "benchmarks" / "results" / "fmax_pipeline.md"
SIMDS = (16, 32, 64)
DEPTHS = (0, 1, 2, 3)
SEEDS = (1, 2, 3)
TARGET_MHZ = 150.0
LUT_SLACK = 1.10


@contextlib.contextmanager
def nextpnr_lock():
    """Hold a file lock while nextpnr runs, so that this script and ``fmax_accelerator.py`` run
    one nextpnr at a time."""
    with open(Path(tempfile.gettempdir()) / "lowbit-fmax-nextpnr.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class PipelinedLanes(wiring.Component):
    """``pe`` XNOR-popcount lanes of ``simd`` inputs between input and output registers, with the
    register inside the tree when ``cut`` (an int: that many register stages, the cuts of
    pipeline 5 and 6, :func:`lowbit.hw.fmax.popcount_cuts`)."""

    def __init__(self, pe: int, simd: int, cut: bool | int):
        self.pe, self.simd, self.cut = pe, simd, cut
        self.count_bits = simd.bit_length()
        super().__init__({"x": In(simd), "w": In(pe * simd), "count": Out(pe * self.count_bits)})

    def elaborate(self, platform):
        m = Module()
        x, w = Signal(self.simd), Signal(self.pe * self.simd)
        m.d.sync += [x.eq(self.x), w.eq(self.w)]
        stages = int(self.cut)
        cuts = tuple(lv for lv, _ in popcount_cuts(self.simd, 2, stages)) if stages else ()
        extra = {"cut": cuts[0] if stages == 1 else cuts, "en": 1} if stages else {}
        for p in range(self.pe):
            bits = [~(x[i] ^ w[p * self.simd + i]) for i in range(self.simd)]
            total = popcount(m, bits, fanin=2, name=f"lane{p}", **extra)
            m.d.sync += self.count[p * self.count_bits : (p + 1) * self.count_bits].eq(total)
        return m


def critical_path(report: dict) -> dict:
    """The slowest register-to-register path of the clock in nextpnr's report: its start and end
    cells, logic cells, logic and routing delay (ns). Paths from or to the pins (``<async>``) are
    left out (the harness's inputs are not timed)."""
    paths = [p for p in report.get("critical_paths") or []
             if p.get("from") == p.get("to") and "async" not in str(p.get("from"))]
    if not paths:
        return {}
    worst = max(paths, key=lambda p: sum(s["delay"] for s in p["path"]))
    steps = worst["path"]
    logic = sum(s["delay"] for s in steps if s["type"] != "routing")
    route = sum(s["delay"] for s in steps if s["type"] == "routing")
    return {
        "from": steps[0]["from"]["cell"],
        "to": steps[-1]["to"]["cell"],
        "cells": sum(1 for s in steps if s["type"] == "logic"),
        "logic_ns": round(logic, 2),
        "routing_ns": round(route, 2),
        "through": [s["to"]["cell"] for s in steps if s["type"] == "logic"][:12],
    }


def measure_unit(simd: int, depth: int, seeds, ram: str = "auto", timeout: float = 1800) -> dict:
    """Synthesise the harnessed XNOR unit once and place-and-route it with each seed;
    ``ram`` is its ``weight_ram``."""
    spec = dataclasses.replace(make_spec("xnor", simd, depth), weight_ram=ram)
    device, target = DEVICES["ecp5"]
    runs = []
    with tempfile.TemporaryDirectory(prefix="lowbit-fmaxp-") as tmp:
        work = Path(tmp)
        (work / "unit.v").write_text(to_verilog(Harness(spec), "fmax_unit"))
        t0 = time.monotonic()
        synth_for_pnr(work, ["unit.v"], "fmax_unit", "ecp5", timeout=timeout)
        synth_s = time.monotonic() - t0
        for seed in seeds:
            t0 = time.monotonic()
            with nextpnr_lock():
                run_logged(
                    tool_command(NEXTPNR["ecp5"])
                    + device
                    + ["--json", "top.json", "--freq", str(target), "--seed", str(seed)]
                    + ["--report", "report.json", "--timing-allow-fail"],
                    work,
                    "nextpnr",
                    timeout,
                    "nextpnr.log",
                )
            rep = json.loads((work / "report.json").read_text())
            util = rep["utilization"]
            runs.append({
                "seed": seed,
                "fmax_mhz": round(min(v["achieved"] for v in rep["fmax"].values()), 2),
                "comb": util["TRELLIS_COMB"]["used"],
                "ff": util["TRELLIS_FF"]["used"],
                "ram": util.get("DP16KD", {}).get("used"),
                "critical": critical_path(rep),
                "seconds": round(time.monotonic() - t0, 1),
            })
            logging_line(f"  seed {seed}: {runs[-1]['fmax_mhz']} MHz")
    return {"simd": simd, "pe": PE, "mw": spec.mw, "mh": spec.mh, "depth": depth, "ram": ram,
            "latency": spec.latency(), "estimate_mhz": round(estimate_fmax(spec, "ecp5"), 1),
            "synth_s": round(synth_s, 1), "runs": runs}


def measure_lanes(simd: int, cut: bool | int) -> dict:
    cells = synth_cells(to_verilog(PipelinedLanes(PE, simd, cut), "dut"), "dut")
    res = resources_from_cells(cells)
    return {"simd": simd, "pe": PE, "cut": cut if isinstance(cut, bool) else int(cut),
            "lut": res.lut, "ff": res.ff,
            "lut_per_lane": round(res.lut / (PE * simd), 3)}


def logging_line(text: str) -> None:
    print(text, flush=True)


def _mean(v):
    return sum(v) / len(v)


def write_table(doc: dict) -> None:
    units = sorted(doc["units"], key=lambda u: (u.get("ram", "auto") != "auto", u["simd"],
                                                u["depth"]))
    lanes = {(r["simd"], r["cut"]): r for r in doc["lanes"]}
    base = {u["simd"]: u for u in units if u["depth"] == 0 and u.get("ram", "auto") == "auto"}
    lines = [
        "# MVTU Fmax at every pipeline depth on ECP5-85F",
        "",
        "`benchmarks/fmax_pipeline.py`: XNOR MVTUs (PE 2, MW = 4 x SIMD, NF 16: 64 weight words in",
        "LUTs) alone in `benchmarks/fmax_model.py`'s harness, yosys `synth_ecp5` once per design,",
        "nextpnr-ecp5 LFE5U-85F CABGA381 speed 6 (ulx3s-85f) at a 250 MHz target with seeds "
        f"{', '.join(map(str, doc.get('seeds', SEEDS)))}.",
        "`pipeline` is MVTUSpec's depth: 1 registers the tree's output, 2 also the accumulator,",
        "3 also a register inside each compressor tree at half its depth, 4 also the memories'",
        "read data (weight and input words) before the trees. Target (issue 21): mean",
        f"Fmax >= {TARGET_MHZ:.0f} MHz with LUT per binary lane <= {LUT_SLACK:.2f} x today's.",
        "",
        "| SIMD | weight_ram | pipeline | latency | Fmax mean (MHz) | min-max | model "
        "| comb cells | vs depth 0 | FF | DP16KD | critical path (seed 1) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for u in units:
        f = [r["fmax_mhz"] for r in u["runs"]]
        comb = _mean([r["comb"] for r in u["runs"]])
        b = base.get(u["simd"]) if u.get("ram", "auto") == "auto" else None
        ratio = f"{comb / _mean([r['comb'] for r in b['runs']]):.3f}" if b else "-"
        spec = dataclasses.replace(make_spec("xnor", u["simd"], u["depth"]),
                                   weight_ram=u.get("ram", "auto"))
        est = estimate_fmax(spec, "ecp5")
        c = u["runs"][0].get("critical") or {}
        crit = (f"{c['from']} -> {c['to']}: {c['cells']} cells, {c['logic_ns']} ns logic + "
                f"{c['routing_ns']} ns routing") if c else "-"
        lines.append(
            f"| {u['simd']} | {u.get('ram', 'auto')} | {u['depth']} | {u['latency']} "
            f"| **{_mean(f):.1f}** | {min(f):.1f}-{max(f):.1f} | {est:.1f} "
            f"| {comb:.0f} | {ratio} | {u['runs'][0]['ff']} | {u['runs'][0].get('ram', '-')} "
            f"| {crit} |"
        )
    lines += [
        "",
        "## LUT per binary lane (yosys synth_xilinx, LUT6)",
        "",
        f"PE {PE} XNOR-popcount lanes between registers; depths 0-2 leave the lanes unchanged,",
        "depth 3 adds the register inside the tree (4 adds registers in front of the lanes only).",
        "",
        "| SIMD | depth 0-2: LUT | LUT/lane | depth 3-4: LUT | LUT/lane | ratio | FF 0-2 | FF 3 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for simd in sorted({s for s, _ in lanes}):
        a, b = lanes.get((simd, False)), lanes.get((simd, True))
        if not a or not b:
            continue
        lines.append(
            f"| {simd} | {a['lut']} | {a['lut_per_lane']:.3f} | {b['lut']} | "
            f"{b['lut_per_lane']:.3f} | {b['lut'] / a['lut']:.3f} | {a['ff']} | {b['ff']} |"
        )
    deeper = [(simd, lanes.get((simd, False)), lanes.get((simd, 2)), lanes.get((simd, 3)))
              for simd in sorted({s for s, _ in lanes})]
    deeper = [row for row in deeper if all(row[1:])]
    if deeper:
        lines += [
            "",
            "Depths 5 and 6 (two and three registers inside each tree, `popcount_cuts`):",
            "",
            "| SIMD | depth 0-2: LUT/lane | depth 5: LUT | LUT/lane | ratio | depth 6: LUT | "
            "LUT/lane | ratio | FF 5 | FF 6 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for simd, a, b, c in deeper:
            lines.append(
                f"| {simd} | {a['lut_per_lane']:.3f} | {b['lut']} | {b['lut_per_lane']:.3f} | "
                f"{b['lut'] / a['lut']:.3f} | {c['lut']} | {c['lut_per_lane']:.3f} | "
                f"{c['lut'] / a['lut']:.3f} | {b['ff']} | {c['ff']} |"
            )
    acc_file = RESULTS.with_name("fmax_accelerator.json")
    if acc_file.exists():
        lines += [
            "",
            "## A whole accelerator (`benchmarks/fmax_accelerator.py`)",
            "",
            "The demo's binary MLP (64-256-256-10) at budget 0.1 on ulx3s-85f, every unit at the",
            "deepest pipeline it takes (the label select pipelined after it), in the open flow's",
            "UART shell, nextpnr-ecp5 at a 150 MHz target. Layers: name PE x SIMD, kind, pipeline.",
            "",
            "| layers | seed | Fmax (MHz) | LUT4 | FF | DP16KD | critical path |",
            "|---|---|---|---|---|---|---|",
        ]
        for b in json.loads(acc_file.read_text())["builds"]:
            layers = ", ".join(f"{lay['name']} {lay['pe']}x{lay['simd']} {lay['kind']} "
                               f"p{lay['pipeline']}" for lay in b["layers"])
            c, u = b["critical"], b["utilisation"]
            crit = (f"{c['from']} -> {c['to']}: {c['cells']} cells, {c['logic_ns']} ns logic + "
                    f"{c['routing_ns']} ns routing")
            lines.append(
                f"| {layers} | {b['seed']} | **{min(b['fmax_mhz'].values()):.1f}** "
                f"| {u.get('TRELLIS_COMB')} | {u.get('TRELLIS_FF')} | {u.get('DP16KD', 0)} "
                f"| {crit} |"
            )
    notes = doc.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    atomic_write(TABLE, "\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", default=",".join(f"{s}:{d}" for s in SIMDS for d in DEPTHS),
                    help="SIMD:depth[:weight_ram] points, in the order to run")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)
    doc = (json.loads(RESULTS.read_text()) if RESULTS.exists()
           else {"seeds": args.seeds, "units": [], "lanes": [], "notes": []})

    def save():
        atomic_write(RESULTS, json.dumps(doc, indent=1) + "\n")

    if not args.table_only:
        for simd in SIMDS:
            for cut in (False, True, 2, 3):  # 2 and 3 stages: pipeline 5 and 6
                if not any(r["simd"] == simd and r["cut"] == cut for r in doc["lanes"]):
                    doc["lanes"].append(measure_lanes(simd, cut))
                    save()
        for point in args.points.split(","):
            simd_s, depth_s, *rest = point.split(":")
            simd, depth, ram = int(simd_s), int(depth_s), rest[0] if rest else "auto"
            if any((u["simd"], u["depth"], u.get("ram", "auto")) == (simd, depth, ram)
                   for u in doc["units"]):
                continue
            logging_line(f"SIMD {simd} pipeline {depth} weight_ram {ram} ...")
            doc["units"].append(measure_unit(simd, depth, args.seeds, ram))
            save()
    write_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
