"""What cocotb's ``--public-flat-rw`` costs a Verilator build, against ``--public-depth 1``.

cocotb's runner makes every signal of every module public; lowbit's testbenches touch only the
top module's ports, so ``lowbit.tools.simulators`` builds with ``--public-depth 1``
(:data:`~lowbit.tools.simulators.PUBLIC_ARGS`). For one compiled design this script Verilates the
same ``lowbit_top.v`` both ways (Verilator's own ``-O3``, as the cocotb build does) and compiles
the C++ with one job, and reports CPU seconds (user + system of the tool and its children: steadier
than wall time on a shared machine), the C++ written and the ratio, in one run::

    lowbit train --weights INT2 --acts UINT2 --hidden 64,64 -o m.npz
    lowbit compile m.npz --budget 0.7 -o compiled
    .venv/bin/python benchmarks/verilator_public.py compiled [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
from pathlib import Path

from lowbit.tools.simulators import ensure_verilator

VARIANTS = {
    "public-flat-rw (cocotb)": ["--public-flat-rw"],
    "public-depth 1 (lowbit)": ["--public-depth", "1"],
}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], cwd: Path, env: dict) -> float:
    before = _children_cpu()
    subprocess.run(
        cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    return _children_cpu() - before


def measure(verilog: Path, work: Path) -> list[dict]:
    verilator = str(ensure_verilator())
    env = dict(os.environ, MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include")
    rows = []
    for name, flags in VARIANTS.items():
        obj = work / name.split()[0]
        obj.mkdir()
        verilate = _timed(
            [
                verilator,
                "--cc",
                "--vpi",
                "-Wno-fatal",
                "-O3",
                "--top-module",
                "lowbit_top",
                "--prefix",
                "Vtop",
                "-Mdir",
                str(obj),
                *flags,
                str(verilog),
            ],
            work,
            env,
        )
        cxx = sum(p.stat().st_size for p in obj.glob("*.cpp")) + sum(
            p.stat().st_size for p in obj.glob("*.h")
        )
        files = len(list(obj.glob("*.cpp")))
        make = _timed(["make", "-j1", "-C", str(obj), "-f", "Vtop.mk"], work, env)
        rows.append(
            {
                "variant": name,
                "verilate_cpu_s": round(verilate, 1),
                "make_cpu_s": round(make, 1),
                "total_cpu_s": round(verilate + make, 1),
                "cxx_bytes": cxx,
                "cpp_files": files,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("compiled", type=Path, help="a compiled directory (lowbit compile -o DIR)")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    verilog = (args.compiled / "lowbit_top.v").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(verilog, Path(tmp))
    base = rows[0]["total_cpu_s"]
    print(f"{verilog} ({verilog.stat().st_size:,} bytes of Verilog)")
    head = "variant | Verilate CPU s | C++ compile CPU s | total | C++ written | .cpp files"
    print(f"| {head} | vs cocotb's |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['variant']} | {r['verilate_cpu_s']} | {r['make_cpu_s']} | {r['total_cpu_s']} | "
            f"{r['cxx_bytes'] / 1e6:.1f} MB | {r['cpp_files']} | {r['total_cpu_s'] / base:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
