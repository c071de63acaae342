"""Progress on the terminal: one place for every command's bars (tqdm) and step lines (stderr)."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["Bar", "SimBar", "step_printer"]


class _Lines:
    """stderr for tqdm when it is not a terminal: each redraw on a line of its own."""

    def write(self, text: str) -> None:
        text = text.replace("\r", "\n")
        for line in text.splitlines():
            if line.strip():
                sys.stderr.write(line + "\n")

    def flush(self) -> None:
        sys.stderr.flush()


class Bar:
    """A progress bar on stderr (tqdm): called with ``(done, total[, loss])``; a ``total`` of 0
    at creation is taken from the first call. Not on a terminal, it writes a line at most every
    ``NOT_A_TTY_INTERVAL`` seconds and at the end instead of redrawing."""

    NOT_A_TTY_INTERVAL = 10.0

    def __init__(self, label: str, total: int, unit: str = ""):
        self.label, self.total, self.unit = label, total, unit or "it"
        self._bar: tqdm | None = None

    def _open(self, total: int) -> tqdm:
        tty = sys.stderr.isatty()
        return tqdm(
            total=total,
            desc=f"  {self.label}",
            unit=self.unit,
            file=sys.stderr if tty else _Lines(),
            leave=True,
            dynamic_ncols=tty,
            mininterval=0.1 if tty else self.NOT_A_TTY_INTERVAL,
            ascii=not tty,
        )

    def __call__(self, done: int, total: int, loss: float | None = None) -> None:
        if self._bar is None:
            self._bar = self._open(total or self.total)
        bar = self._bar
        if total and bar.total != total:
            bar.total = total
        if loss is not None:
            bar.set_postfix_str(f"loss {loss:.3f}", refresh=False)
        bar.update(done - bar.n)
        if done >= (bar.total or 0):
            bar.close()
            self._bar = None


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
