"""Atomic file output: write to a temporary file beside the target, then rename it into place.

An interrupted or failing write never leaves a half-written file at the target path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None] | str | bytes) -> Path:
    """Write ``path`` atomically. ``write`` is the text or bytes, or a function given the open file
    (binary mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, str):
                f.write(write.encode("utf-8"))
            elif isinstance(write, bytes):
                f.write(write)
            else:
                write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
