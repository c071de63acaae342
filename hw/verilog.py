"""Verilog generation for the stitched accelerator."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

from amaranth.back import verilog

from .._io import atomic_write
from ..tools.simulators import ensure_verilator

__all__ = ["TOPLEVEL", "to_verilog", "write_verilog", "lint", "LINT_WAIVERS"]

LINT_WAIVERS = Path(__file__).with_name("lint_waivers.vlt")
"""Verilator configuration with the waived lint rules, one reason per waiver."""

TOPLEVEL = "lowbit_top"


def to_verilog(component, name: str = TOPLEVEL) -> str:
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, path: str | os.PathLike, name: str = TOPLEVEL) -> str:
    """Write the Verilog of ``component`` to ``path`` atomically; return its SHA-256."""
    text = to_verilog(component, name)
    atomic_write(path, text)
    return hashlib.sha256(text.encode()).hexdigest()


def lint(
    verilog: str | os.PathLike,
    top: str = TOPLEVEL,
    *,
    waivers: str | os.PathLike | None = LINT_WAIVERS,
    timeout: float = 900,
) -> list[str]:
    """Run ``verilator --lint-only -Wall`` on ``verilog`` with ``waivers``; return the warnings.

    Each returned string is one ``%Warning-RULE: file:line:col: message`` line (errors too, but not
    Verilator's closing "Exiting due to N warnings"). An empty list means the design is lint-clean
    under the waivers.
    """

    cmd = [str(ensure_verilator()), "--lint-only", "-Wall", "--top-module", top]
    if waivers is not None:
        cmd.append(str(waivers))
    cmd.append(str(verilog))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return [
        line
        for line in proc.stderr.splitlines()
        if re.match(r"%(Warning|Error)", line) and not line.startswith("%Error: Exiting due to")
    ]
