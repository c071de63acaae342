"""The ECP5 block RAM's output register, used for the register that follows a read (issue 21).

yosys ``synth_ecp5`` maps a synchronous read port to a ``DP16KD`` in ``NOREG`` mode and leaves the
register after it (an MVTU's ``w_word_r`` / ``x_word_r`` at ``pipeline >= 4``) as fabric
flip-flops: the path from the block RAM to them is the block's whole clock-to-out (about 5.6 ns
at speed 6) plus routing, which limited a unit at pipeline 4 to about 130 MHz. The block has an
output register of its own (``REGMODE_x = "OUTREG"``, loaded when ``OCEx`` is high, clocked by
the port's clock), whose clock-to-out is short; yosys has no pass that moves a fabric register
into it (an out-of-tree plugin does), so :func:`absorb_output_registers` does it on the netlist
JSON between yosys and nextpnr.

A read port's register moves into the block only when nothing but that register sees the read
data, so the netlist means the same (one cycle from address to register output, loaded under
the same enable):

* every used data-out bit of the port drives exactly one cell input, the ``DI`` of a
  ``TRELLIS_FF``, and is not a module port;
* each such flip-flop is clocked by the port's clock (not inverted), has no set/reset (``LSR``
  tied to ``0``, ``REGSET`` ``RESET``; the MVTU's read registers are ``reset_less``: their
  content before the first valid word is never used), and all of them share one clock enable
  (``CE``, or none: then ``OCE`` is tied high; an inverted enable, ``CEMUX`` ``INV``, as yosys
  makes of the units' ``~stall``, drives ``OCE`` through the block's own inversion,
  ``OCExMUX`` ``INV``, which ecppack's database has: no added logic on that path);
* the port only reads (``WE`` tied ``0``), and the block's own reset of that port is tied ``0``.

In the 36-bit pseudo-dual-port mode (``DATA_WIDTH_A`` 36: port A writes, port B reads the 36-bit
word on ``DOA`` and ``DOB``), the read is wholly in port B's clock domain (``CLKB``, ``OCEB``) and
both ``REGMODE_A`` and ``REGMODE_B`` are set, as nextpnr's ``PDPW16KD`` conversion does. The
flip-flops are removed and the data-out bits take their outputs' nets.

Not simulated here: yosys's ``DP16KD`` simulation model is a black box (the gate-level check runs
with ``-nobram``); the rewrite follows the primitive's documented semantics and nextpnr's timing
and bitstream code for it. ``tests/test_bram_outreg.py`` checks the rewrite on netlists.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_write

__all__ = ["OutregReport", "absorb_output_registers", "absorb_in_file"]

logger = logging.getLogger(__name__)

_ZERO = "0"


@dataclass(frozen=True)
class OutregReport:
    """What :func:`absorb_output_registers` did: ``ports`` read ports now using their block's
    output register, ``registers`` flip-flops removed, ``skipped`` read ports left as they were
    with the reason, ``(cell, port, reason)``."""

    ports: int
    registers: int
    skipped: tuple[tuple[str, str, str], ...]


def _param(cell: dict, name: str, default: str = "") -> str:
    return str(cell.get("parameters", {}).get(name, default)).strip()


def _width(cell: dict, name: str) -> int:
    v = _param(cell, name, "18")
    return int(v, 2) if set(v) <= {"0", "1"} and len(v) > 4 else int(v)


def _sinks(module: dict) -> dict[int, list[tuple[str, str]]]:
    """Net bit -> the (cell, input port) pairs it drives."""
    out: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in module["cells"].items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port, "input") != "input":
                continue
            for b in bits:
                if isinstance(b, int):
                    out[b].append((name, port))
    return out


def _port_bits(module: dict) -> set[int]:
    return {b for p in module.get("ports", {}).values() for b in p["bits"] if isinstance(b, int)}


def _tied(cell: dict, port: str, value: str) -> bool:
    bits = cell["connections"].get(port, [value])
    return all(b == value for b in bits)


def _read_ports(cell: dict) -> list[tuple[str, list[str]]]:
    """``(side, data ports)`` of the block's read ports: ``side`` names the clock, enable and
    reset pins (``A`` or ``B``)."""
    if _width(cell, "DATA_WIDTH_A") == 36:  # pseudo dual port: B reads all 36 bits
        return [("B", [f"DOA{i}" for i in range(18)] + [f"DOB{i}" for i in range(18)])]
    return [(s, [f"DO{s}{i}" for i in range(18)]) for s in ("A", "B")]


def absorb_output_registers(netlist: dict, top: str) -> OutregReport:
    """Move the flip-flops that register a ``DP16KD`` read into the block's output register, in
    ``netlist`` (yosys ``write_json``) module ``top``, in place (see the module docstring)."""
    module = netlist["modules"][top]
    cells = module["cells"]
    sinks = _sinks(module)
    ports = _port_bits(module)
    removed: set[str] = set()
    done = registers = 0
    skipped: list[tuple[str, str, str]] = []
    for name in sorted(cells):
        cell = cells[name]
        if cell["type"] != "DP16KD":
            continue
        for side, data in _read_ports(cell):
            conns = cell["connections"]
            used = [(p, conns[p][0]) for p in data if p in conns and isinstance(conns[p][0], int)]
            used = [(p, b) for p, b in used if sinks.get(b) or b in ports]
            if not used:
                continue
            why = _refuse(cell, side, used, sinks, ports, cells, removed)
            if isinstance(why, str):
                skipped.append((name, side, why))
                continue
            ffs, ce = why
            for (port, _), ff in zip(used, ffs):
                conns[port] = [cells[ff]["connections"]["Q"][0]]
                removed.add(ff)
            params = cell.setdefault("parameters", {})
            if isinstance(ce, tuple):  # ("INV", net): OCE is the inverse of the registers' CE
                ce = ce[1]
                params[f"OCE{side}MUX"] = "INV"
            conns[f"OCE{side}"] = [ce]
            for s in ("A", "B") if len(data) == 36 else (side,):  # PDP: both halves' registers
                params[f"REGMODE_{s}"] = "OUTREG"
            done += 1
            registers += len(ffs)
    for ff in removed:
        del cells[ff]
    if done:
        logger.info("block RAM output registers: %d read port(s), %d flip-flop(s)", done, registers)
    return OutregReport(done, registers, tuple(skipped))


def _refuse(cell, side, used, sinks, ports, cells, removed) -> str | tuple[list[str], object]:
    """Why the read port cannot take its register (a reason), or its flip-flops and their
    enable net (``"1"`` for none)."""
    conns = cell["connections"]
    if _param(cell, f"REGMODE_{side}", "NOREG") != "NOREG":
        return "already registered"
    if _width(cell, "DATA_WIDTH_A") != 36 and not _tied(cell, f"WE{side}", _ZERO):
        return "the port also writes"
    if not _tied(cell, f"RST{side}", _ZERO):
        return "the port's reset is used"
    if _param(cell, f"CLK{side}MUX", f"CLK{side}") != f"CLK{side}":
        return "inverted clock"
    clock = conns.get(f"CLK{side}", [None])[0]
    ffs: list[str] = []
    enables: set = set()
    for _, bit in used:
        if bit in ports:
            return "read data on a module port"
        loads = sinks.get(bit, [])
        if len(loads) != 1 or loads[0][1] != "DI":
            return "read data drives logic"
        ff = cells[loads[0][0]]
        if ff["type"] != "TRELLIS_FF" or loads[0][0] in removed:
            return "read data drives logic"
        fc = ff["connections"]
        if fc.get("CLK", [None])[0] != clock or _param(ff, "CLKMUX", "CLK") != "CLK":
            return "register on another clock"
        if _param(ff, "REGSET", "RESET") != "RESET" or not _tied(ff, "LSR", _ZERO):
            if _param(ff, "LSRMUX", "LSR") != "0":
                return "register with a set/reset"
        cemux = _param(ff, "CEMUX", "CE")
        if cemux == "CE":
            enables.add(fc.get("CE", ["1"])[0])
        elif cemux in ("1", ""):
            enables.add("1")
        elif cemux == "INV" and isinstance(fc.get("CE", ["1"])[0], int):
            enables.add(("INV", fc["CE"][0]))
        else:
            return f"register with enable mux {cemux!r}"
        ffs.append(loads[0][0])
    if len(enables) != 1:
        return "registers with different enables"
    return ffs, enables.pop()


def absorb_in_file(path: Path, top: str) -> OutregReport:
    """:func:`absorb_output_registers` on the netlist JSON file ``path``, rewritten in place when
    anything moved."""
    netlist = json.loads(path.read_text())
    report = absorb_output_registers(netlist, top)
    if report.ports:
        atomic_write(path, json.dumps(netlist))
    return report
