"""Verilog generation for the stitched accelerator."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from amaranth.back import verilog

__all__ = ["TOPLEVEL", "to_verilog", "write_verilog"]

TOPLEVEL = "lowbit_top"


def to_verilog(component, name: str = TOPLEVEL) -> str:
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, path: str | os.PathLike, name: str = TOPLEVEL) -> str:
    """Write the Verilog of ``component`` to ``path`` atomically; return its SHA-256."""
    text = to_verilog(component, name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return hashlib.sha256(text.encode()).hexdigest()
