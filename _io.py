"""Atomic file output: write to a temporary file beside the target, then rename it into place.

An interrupted or failing write never leaves a half-written file at the target path. A target the
system will not let lowbit write (a directory, a path under a regular file, a read-only directory,
a full disk) is refused with a :class:`~lowbit.LowbitError` naming it (:func:`cannot_write`).

Whatever is staged in a temporary file or directory and renamed into place gets the permissions a
plain ``open()`` or ``mkdir()`` would have given it (:func:`umask_mode`), not the ``0600`` and
``0700`` of :mod:`tempfile`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from lowbit import LowbitError  # absolute: mypy run from the root also reads this file as `_io`

__all__ = ["atomic_write", "cannot_write", "umask_mode"]


def _umask() -> int:
    """The process's umask: read from ``/proc/self/status`` where Linux has it (reading it with
    :func:`os.umask` means setting it, for a moment, in every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def umask_mode(*, directory: bool = False, executable: bool = False) -> int:
    """The permission bits a new file gets from a plain ``open()`` (``0o666``), or a new directory
    from ``mkdir()`` or an executable (``0o777``), less the process's umask: ``0o644`` and
    ``0o755`` under the usual umask ``022``.

    Every output lowbit stages in a temporary file or directory (:func:`atomic_write`, the output
    directories of ``compile`` and ``build``) is given these bits before it is renamed into place.
    """
    return (0o777 if directory or executable else 0o666) & ~_umask()


def cannot_write(path: str | os.PathLike, err: OSError) -> LowbitError:
    """The error for an output ``path`` the system refused with ``err``: it names ``path`` and,
    when one of its ancestors is a regular file, that ancestor."""
    path = Path(path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return LowbitError(f"{path}: cannot write there: {parent} is not a directory")
            break
    return LowbitError(f"{path}: cannot write ({err.strerror or err})")


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None] | str | bytes) -> Path:
    """Write ``path`` atomically. ``write`` is the text or bytes, or a function given the open file
    (binary mode).

    Raises
    ------
    LowbitError
        If ``path`` is a directory or the system refuses to write it (:func:`cannot_write`);
        nothing is left behind then.
    """
    path = Path(path)
    if path.is_dir():
        raise LowbitError(f"{path}: is a directory; expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, umask_mode())
            if isinstance(write, str):
                f.write(write.encode("utf-8"))
            elif isinstance(write, bytes):
                f.write(write)
            else:
                write(f)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise cannot_write(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
