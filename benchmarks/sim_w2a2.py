"""How long ``lowbit sim`` takes on the W2A2 digits MLP, cold, phase by phase (issue 21).

The design is made as issue 21 made it: ``lowbit train`` with the W2A2 options of
``benchmarks/openflow.py`` (``--weights INT2 --acts UINT2 --epochs 2``, digits, seed 0), then
``lowbit compile`` at the default budget. Each variant runs ``lowbit sim`` (the default: the whole
digits test split in the steady run and two throttled runs of 100 images, under cocotb + Verilator)
as a new process on a fresh copy of the compiled directory (no simulator build to reuse) with an
empty ``$LOWBIT_CACHE``; no ccache is involved (Verilator's ``OBJCACHE`` is cleared).

Phases: Verilate, C++ compile (``make`` of the Verilated model and the runtime) and the cocotb
run are timed by :mod:`lowbit.tools.simulators` itself (``tool_times.json`` in the build
directory); the rest of the process (Python start, loading the design, Amaranth elaboration and
the Verilog written for the check, the testbench set-up) is "elaboration and set-up". Wall
seconds depend on what else the machine runs; CPU seconds (user + system of the process and its
children) are the steadier figure, and ratios compare variants of the same run::

    .venv/bin/python benchmarks/sim_w2a2.py --work /tmp/simw2a2 \\
        [--variant NAME ...] [--out benchmarks/results/sim_w2a2]

A variant is a set of ``make`` variables passed through ``MAKEFLAGS`` (the library adds its own),
e.g. the C++ optimisation level of the Verilated model (``OPT_FAST``, Verilator's default ``-Os``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = ["--weights", "INT2", "--acts", "UINT2", "--epochs", "2"]
"""``lowbit train`` arguments: ``benchmarks/openflow.py``'s ``w2a2`` design (digits, seed 0)."""

VARIANTS: dict[str, str] = {
    "lowbit (default)": "",  # Verilator's OPT_FAST=-Os
    "OPT_FAST=-O1": "OPT_FAST=-O1",
    "OPT_FAST=-O0": "OPT_FAST=-O0",
}
"""``MAKEFLAGS`` of each variant."""

LIMIT_S = 300
"""Issue 21's bound on the wall time of ``lowbit sim`` (2 cores, cold cache)."""


def lowbit_cmd() -> list[str]:
    return [sys.executable, "-c", "import sys; from lowbit.cli.app import main; sys.exit(main())"]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> dict:
    """Run ``cmd``; its wall and CPU seconds (children included)."""
    wall, cpu = time.perf_counter(), _children_cpu()
    with open(log or os.devnull, "w") as out:
        subprocess.run(cmd, check=True, env=env, stdout=out, stderr=subprocess.STDOUT)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": _children_cpu() - cpu}


def prepare(work: Path) -> tuple[Path, dict]:
    """The trained model and its compiled directory (made once, reused by later runs)."""
    work.mkdir(parents=True, exist_ok=True)
    model, compiled, made = work / "model.npz", work / "compiled", {}
    if not model.is_file():
        made["train"] = timed(lowbit_cmd() + ["train", *TRAIN, "-o", str(model)])
    if not (compiled / "report.json").is_file():
        made["compile"] = timed(lowbit_cmd() + ["compile", str(model), "-o", str(compiled)])
    return compiled, made


def run_variant(compiled: Path, work: Path, name: str, makeflags: str) -> dict:
    """One cold ``lowbit sim`` of a fresh copy of ``compiled`` with ``makeflags``."""
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    copy = work / f"run_{slug}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(compiled, copy, ignore=shutil.ignore_patterns("sim", "sim_*", "gate_level"))
    cache = Path(tempfile.mkdtemp(prefix="lowbit-cache-", dir=work))
    env = dict(os.environ, LOWBIT_CACHE=str(cache), OBJCACHE="", MAKEFLAGS=makeflags)
    result = copy / "sim.json"
    total = timed(
        lowbit_cmd() + ["sim", str(copy), "--json", str(result)], env, log=copy / "sim.out"
    )
    shutil.rmtree(cache, ignore_errors=True)
    tools = json.loads((copy / "sim" / "sim_build" / "tool_times.json").read_text())
    phases = {p: {"wall_s": 0.0, "cpu_s": 0.0} for p in ("verilate", "compile", "run")}
    for t in tools:
        phases[t["phase"]]["wall_s"] += t["wall_s"]
        phases[t["phase"]]["cpu_s"] += t["cpu_s"]
    rest = {k: total[k] - sum(p[k] for p in phases.values()) for k in ("wall_s", "cpu_s")}
    sim = json.loads(result.read_text())
    return {
        "variant": name,
        "makeflags": makeflags,
        "phases": {"elaboration and set-up": rest, **phases},
        "total": total,
        "images": sum(r["images"] for r in sim["runs"]),
        "mismatches": sim["mismatches"],
        "ok": sim["ok"],
        "verilog_bytes": (compiled / "lowbit_top.v").stat().st_size,
    }


def table(rows: list[dict]) -> str:
    base = rows[0]["total"]["cpu_s"]
    names = list(rows[0]["phases"])
    head = " | ".join(f"{n} wall / CPU s" for n in names)
    lines = [
        f"| variant | {head} | total wall s | total CPU s | CPU vs first | images | mismatches |",
        "|---" * (len(names) + 7) + "|",
    ]
    for r in rows:
        cells = " | ".join(
            f"{r['phases'][n]['wall_s']:.0f} / {r['phases'][n]['cpu_s']:.0f}" for n in names
        )
        t = r["total"]
        lines.append(
            f"| {r['variant']} | {cells} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} | "
            f"{t['cpu_s'] / base:.2f} | {r['images']} | {r['mismatches']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="working directory (kept)")
    ap.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        help="variants to run, in order (default: all; the first is the ratios' baseline)",
    )
    ap.add_argument("--out", type=Path, help="write OUT.json (rows) and print the table")
    args = ap.parse_args()
    compiled, made = prepare(args.work.resolve())
    rows = []
    for name in args.variant or list(VARIANTS):
        rows.append(run_variant(compiled, args.work.resolve(), name, VARIANTS[name]))
        print(json.dumps(rows[-1]), flush=True)
    lines = [f"{compiled / 'lowbit_top.v'}: {rows[0]['verilog_bytes']:,} bytes of Verilog"]
    lines += [f"{k}: {t['wall_s']:.0f} s wall, {t['cpu_s']:.0f} s CPU" for k, t in made.items()]
    lines += [f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}", ""]
    lines.append(table(rows))
    print("\n".join(lines))
    if args.out:
        args.out.with_suffix(".json").write_text(
            json.dumps({"made": made, "rows": rows, "limit_s": LIMIT_S}, indent=1)
        )
        args.out.with_suffix(".table.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
