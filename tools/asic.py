"""The ASIC view: gate-level area of a generated design with yosys' generic flow, no FPGA
primitives.

``asic_area(verilog, top)`` runs ``synth -flatten`` (memories become flip-flops, or logic when they
are read-only), maps the logic to the CMOS gate set with ``abc -g cmos2`` (NAND, NOR, NOT) and
reads ``stat -tech cmos``. yosys's transistor estimate counts the gates only (it prints ``N+``:
flip-flops are left out), so the flip-flops are added here at :data:`TRANSISTORS_PER_FF`
transistors each — our stated assumption for a static master-slave D flip-flop with enable and
synchronous reset (the plain 24-transistor C2MOS flip-flop plus a gated-enable mux share).
NAND2 equivalents are transistors / 4.

These are pre-layout, technology-independent estimates (no wiring, no sizing, no SRAM macros):
good for comparing designs and foldings, not a tape-out area.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .. import LowbitError
from .yosys import run_yosys

__all__ = ["AsicArea", "asic_area", "TRANSISTORS_PER_FF"]

logger = logging.getLogger(__name__)

TRANSISTORS_PER_FF = 26
"""Transistors counted per flip-flop (see the module docstring: an assumption, not yosys's)."""

_FF = re.compile(r"^\$_(S?DFF|DFFE|SDFFE|SDFFCE|DFFSR|DFFSRE|ALDFF|ALDFFE|DLATCH)")


@dataclass(frozen=True)
class AsicArea:
    """Gate-level statistics of one design (see the module docstring for the assumptions)."""

    top: str
    cells: dict
    gate_transistors: int
    flip_flops: int

    @property
    def transistors(self) -> int:
        return self.gate_transistors + TRANSISTORS_PER_FF * self.flip_flops

    @property
    def nand2_equivalents(self) -> float:
        return self.transistors / 4

    @property
    def gates(self) -> int:
        return sum(n for c, n in self.cells.items() if not _FF.match(c))

    def as_dict(self) -> dict:
        return {
            "top": self.top,
            "gates": self.gates,
            "flip_flops": self.flip_flops,
            "gate_transistors": self.gate_transistors,
            "transistors": self.transistors,
            "nand2_equivalents": self.nand2_equivalents,
            "transistors_per_ff": TRANSISTORS_PER_FF,
            "cells": self.cells,
            "method": "yosys synth -flatten; abc -g cmos2; stat -tech cmos (pre-layout estimate)",
        }


def asic_area(verilog: str, top: str, *, timeout: float = 1800) -> AsicArea:
    """Synthesise ``top`` to CMOS gates and count them; errors name the design and quote yosys."""
    if not isinstance(verilog, str) or not verilog:
        raise TypeError(f"verilog must be a non-empty string, not {type(verilog).__name__}")
    script = "; ".join(
        [
            "read_verilog design.v",
            f"synth -flatten -top {top}",
            "abc -g cmos2",
            "delete t:$scopeinfo",
            "opt_clean",
            "tee -q -o stat.json stat -json -tech cmos",
        ]
    )
    logger.info("synthesising %s to CMOS gates with yosys", top)
    doc = run_yosys(
        verilog,
        script,
        timeout=timeout,
        doing=f"the gate-level synthesis of {top!r}",
    )["stat.json"]
    module = next((m for k, m in doc.get("modules", {}).items() if k.lstrip("\\") == top), None)
    if module is None:
        raise LowbitError(f"yosys wrote no statistics for design {top!r}")
    cells = dict(module.get("num_cells_by_type", {}))
    est = str(
        module.get(
            "estimated_num_transistors", doc.get("design", {}).get("estimated_num_transistors", "0")
        )
    )
    gate_t = int(est.rstrip("+") or 0)
    ffs = sum(n for c, n in cells.items() if _FF.match(c))
    unknown = [
        c for c in cells if not _FF.match(c) and c not in ("$_NAND_", "$_NOR_", "$_NOT_", "$_BUF_")
    ]
    if unknown:
        raise LowbitError(
            f"gate-level synthesis of {top!r} left cells outside the CMOS gate set: {unknown}"
        )
    return AsicArea(top, cells, gate_t, ffs)
