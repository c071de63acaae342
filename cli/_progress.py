"""Progress on the terminal: one place for every command's bars and step lines (stderr)."""

from __future__ import annotations

import sys
import time

__all__ = ["Bar", "SimBar", "step_printer"]


class Bar:
    """A small progress bar on stderr (one line per update when stderr is not a terminal)."""

    def __init__(self, label: str, total: int, unit: str = ""):
        self.label, self.total, self.unit, self.tty = label, total, unit, sys.stderr.isatty()
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, loss: float | None = None) -> None:
        width = 30
        filled = int(width * done / max(1, total))
        bar = "#" * filled + "." * (width - filled)
        extra = f"  loss {loss:.3f}" if loss is not None else f" {self.unit}"
        msg = (
            f"  {self.label:22s} [{bar}] {done}/{total}{extra}  "
            f"{time.perf_counter() - self.start:5.1f}s"
        )
        if self.tty:
            sys.stderr.write("\r" + msg + ("\n" if done == total else ""))
        elif done == total or done * 10 // max(1, total) != (done - 1) * 10 // max(1, total):
            sys.stderr.write(msg + "\n")  # not a terminal: one line per tenth
        sys.stderr.flush()


class SimBar:
    """Progress of the RTL runs, fed from the testbench's progress file."""

    def __init__(self):
        self.bars: dict[str, Bar] = {}

    def __call__(self, run: str, done: int, total: int) -> None:
        bar = self.bars.setdefault(run, Bar(f"rtl {run}", total, unit="images"))
        bar(done, total)


def step_printer(counter=[0]):  # noqa: B006 - a counter shared by the calls of one run
    def say(msg: str) -> None:
        counter[0] += 1
        print(f"[{counter[0]}] {msg}", file=sys.stderr, flush=True)

    return say
