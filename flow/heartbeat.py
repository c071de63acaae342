"""A heartbeat for long work: every ``every`` seconds, a line saying what is still running and for
how long (``lowbit run``'s steps, and any ``lowbit`` command on a terminal)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Heartbeat"]


class Heartbeat:
    """Calls ``say("  <name>: still running, <N> s")`` every ``every`` seconds while the ``with``
    block runs (from a daemon thread); the first line comes after ``every`` seconds."""

    def __init__(self, name: str, every: float, say: Callable[[str], None]):
        if not every > 0:
            raise ValueError(f"every must be a positive number of seconds, not {every!r}")
        self.name, self.every, self.say = name, every, say
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.say(f"  {self.name}: still running, {time.monotonic() - self.t0:.0f} s")

    def __enter__(self) -> "Heartbeat":
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
