"""Reading lowbit's own files safely: bounded JSON, bounded reads, paths confined to a directory.

lowbit's files (a model's header, a schedule, a compiled directory's ``report.json``, a build's
``build.json``) may be edited by hand or come from someone else. Every reader goes through these
functions, which refuse with a :class:`~lowbit.LowbitError` naming the file (and key) before doing
work whose size the file controls:

* :func:`read_limited` reads a file only when it is at most ``LIMITS.file_bytes`` long;
* :func:`parse_json` bounds the nesting depth by ``LIMITS.json_depth`` with a linear scan *before*
  parsing (Python's parser recurses, so a deep document would exhaust the stack);
* :func:`confine` resolves a path named by a file (symlinks followed) and refuses it unless it
  lies inside the file's directory.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import LowbitError
from ..limits import LIMITS, check

__all__ = ["json_depth", "parse_json", "read_limited", "read_json", "confine"]

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_CHUNK = 1 << 20


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON document (brackets inside strings do not
    count), without recursion: linear in the length, in chunks of bounded memory."""
    data = _STRING.sub('""', text).encode("utf-8", "replace")
    deepest, depth = 0, 0
    for start in range(0, len(data), _CHUNK):
        b = np.frombuffer(data, np.uint8, min(_CHUNK, len(data) - start), start)
        step = (b == ord("[")).astype(np.int64) + (b == ord("{"))
        step -= (b == ord("]")).astype(np.int64) + (b == ord("}"))
        levels = np.cumsum(step) + depth
        if levels.size:
            deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def parse_json(text: str | bytes, where: str) -> Any:
    """The JSON document ``text`` of ``where`` (a file, or a file and a member); refused when it is
    not UTF-8, nests deeper than ``LIMITS.json_depth`` or is not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LowbitError(f"{where}: not UTF-8 text (byte {e.start})") from None
    check(where, "JSON nesting depth", json_depth(text), LIMITS.json_depth)
    try:
        return json.loads(text)
    except ValueError as e:  # JSONDecodeError, or an integer too long to convert
        raise LowbitError(f"{where}: not a JSON document ({e})") from None


def read_limited(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of ``path``, refused when it is missing or longer than ``LIMITS.file_bytes``
    (checked before reading; a file that grows meanwhile is read up to its checked size + 1)."""
    path = Path(path)
    if not path.is_file():
        raise LowbitError(f"{path}: no such {what}")
    try:
        size = path.stat().st_size
        check(str(path), "file size (bytes)", size, LIMITS.file_bytes)
        with open(path, "rb") as f:  # read() allocates what it is asked for: ask for no more
            data = f.read(size + 1)
    except OSError as e:
        raise LowbitError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    check(str(path), "file size (bytes)", len(data), LIMITS.file_bytes)
    return data


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The JSON document in file ``path`` (:func:`read_limited`, then :func:`parse_json`)."""
    return parse_json(read_limited(path, what), str(path))


def confine(
    root: str | os.PathLike,
    name: Any,
    where: str | None = None,
    key: str | None = None,
    place: str = "directory",
) -> Path:
    """``root / name`` for a relative path ``name``, refused unless it resolves (symlinks
    followed) inside ``root``, the ``place`` (``"build directory"``, ...).

    ``name`` is read from key ``key`` of file ``where`` (the message names both), or, without
    ``key``, is one of lowbit's own file names in ``root``. The path returned is ``root / name`` as
    given (not resolved), so messages show what the file says.
    """
    root = Path(root)
    if not isinstance(name, str) or not name or "\0" in name:
        raise LowbitError(f"{where}: key {key!r} must be a file name (a string), not {name!r}")
    path = root / name
    inside, target = root.resolve(), path.resolve()
    if Path(name).is_absolute() or not target.is_relative_to(inside) or target == inside:
        if key is None:
            raise LowbitError(f"{root}: {name} resolves to {target}, outside the {place}")
        raise LowbitError(
            f"{where}: key {key!r} names {name!r}, which resolves to {target}, outside the "
            f"{place} {root}"
        )
    return path


def confine_tree(root: str | os.PathLike, place: str = "directory") -> None:
    """Refuse a tree whose symbolic links lead outside ``root`` (each checked with
    :func:`confine`), before it is copied with its links followed."""
    root = Path(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                confine(root, str(path.relative_to(root)), place=place)
