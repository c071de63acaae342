"""What a user types, checked where it enters: the ``type=`` of every number, board and output
path of the ``lowbit`` parser.

Each helper reads one kind of argument and raises :class:`argparse.ArgumentTypeError` saying what
was expected; argparse names the flag (``argument --budget: ...``) and :class:`Parser` prints it in
at most two lines with exit status 2. One helper per kind:

* :func:`count` (an integer >= 1: epochs, batch size, workers, PEs), :func:`seed` (>= 0),
  :func:`images` (an image count, at most ``LIMITS.images``);
* :func:`fraction` (a share in (0, 1]: budgets, densities), :func:`positive` (a finite number
  > 0: frame rates, learning rates, widths), :func:`clock_mhz` (finite, > 0, at most
  ``LIMITS.clock_mhz``);
* :func:`board` (a known board; ``PYNQ_Z2`` is read as ``pynq-z2`` and the canonical name is
  printed);
* :func:`output_file` and :func:`output_dir` (a path lowbit may write: not the wrong kind of
  existing entry, not under a regular file, in a directory this user may write).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..limits import LIMITS

__all__ = [
    "Parser",
    "board",
    "clock_mhz",
    "count",
    "fraction",
    "image_source",
    "images",
    "output_dir",
    "output_file",
    "positive",
    "seed",
]


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors take two lines (the error, then where the usage is) and
    exit with status 2; sub-parsers inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(usage: {self.prog} -h)\n")


def _refuse(what: str, text: str) -> argparse.ArgumentTypeError:
    """``expected WHAT, not TEXT`` (quoted unless it reads as a number)."""
    try:
        float(text)
        shown = text.strip()
    except ValueError:
        shown = repr(text)
    return argparse.ArgumentTypeError(f"expected {what}, not {shown}")


def _int(text: str, what: str, lo: int, hi: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _refuse(what, text) from None
    if value < lo or (hi is not None and value > hi):
        raise _refuse(what, text)
    return value


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _refuse(what, text) from None
    if not math.isfinite(value):
        raise _refuse(f"{what} (finite)", text)
    return value


def count(text: str) -> int:
    """An integer >= 1 (epochs, batch size, workers, images per run)."""
    return _int(text, "an integer >= 1", 1)


def seed(text: str) -> int:
    """A random seed: an integer >= 0."""
    return _int(text, "a seed, an integer >= 0", 0)


def images(text: str, what: str = "a number of images") -> int:
    """A number of images: an integer >= 1, at most ``LIMITS.images``."""
    return _int(text, f"{what}, an integer >= 1 and at most {LIMITS.images}", 1, LIMITS.images)


def image_source(text: str) -> str | int:
    """``sim --images``: an image file, or (an integer that names no file) a number of images."""
    if Path(text).exists():
        return text
    try:
        int(text)
    except ValueError:
        return text  # a file name; its reader says when there is no such file
    return images(text, "an image file or a number of images (--images N)")


def fraction(text: str) -> float:
    """A share in (0, 1] (a resource budget, a density)."""
    what = "a share in (0, 1]"
    value = _float(text, what)
    if not 0 < value <= 1:
        raise _refuse(what, text)
    return value


def positive(text: str) -> float:
    """A finite number > 0 (a frame rate, a learning rate, a width scale)."""
    value = _float(text, "a number > 0")
    if not value > 0:
        raise _refuse("a number > 0", text)
    return value


def clock_mhz(text: str) -> float:
    """A clock in MHz: finite, > 0 and at most ``LIMITS.clock_mhz``."""
    what = f"a clock in MHz, > 0 and at most {LIMITS.clock_mhz:g}"
    value = _float(text, what)
    if not 0 < value <= LIMITS.clock_mhz:
        raise _refuse(what, text)
    return value


def board(text: str) -> str:
    """A known board's canonical name. Case, ``_`` and spaces are read as the records' spelling
    (:func:`lowbit.boards.get_board`); the name read is printed on stderr when it differs."""
    from .. import LowbitError
    from ..boards import board_names, get_board

    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a board name, not {text!r}; known boards: {', '.join(board_names())}"
        )
    try:
        name = get_board(text).name
    except LowbitError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if name != text:
        print(f"lowbit: board {text!r} read as {name!r}", file=sys.stderr)
    return name


def _writable_parent(path: Path) -> None:
    """Refuse ``path`` when an existing ancestor is not a directory or cannot be written into."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: cannot write into {parent} (permission denied)")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: cannot write into it (permission denied)")


def output_file(text: str) -> str:
    """A file lowbit may write (atomically): not an existing directory, in a writable place."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file name, not ''")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: is a directory; expected a file name")
    _writable_parent(path)
    return text


def output_dir(text: str) -> str:
    """A directory lowbit may write (staged beside it and renamed into place): not an existing
    regular file, in a writable place."""
    if not text:
        raise argparse.ArgumentTypeError("expected a directory name, not ''")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{path}: exists and is not a directory; expected an output directory"
        )
    _writable_parent(path)
    return text
