"""Verilog generation for the stitched accelerator."""

from __future__ import annotations

import hashlib
import os

from amaranth.back import verilog

from .._io import atomic_write

__all__ = ["TOPLEVEL", "to_verilog", "write_verilog"]

TOPLEVEL = "lowbit_top"


def to_verilog(component, name: str = TOPLEVEL) -> str:
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, path: str | os.PathLike, name: str = TOPLEVEL) -> str:
    """Write the Verilog of ``component`` to ``path`` atomically; return its SHA-256."""
    text = to_verilog(component, name)
    atomic_write(path, text)
    return hashlib.sha256(text.encode()).hexdigest()
