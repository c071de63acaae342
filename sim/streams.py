"""Reusable cocotb stream components: driver, monitor and in-order scoreboard.

A stream is the Amaranth ``lib.stream`` port flattened to Verilog: ``<name>__valid``,
``<name>__ready`` and ``<name>__payload``. Signals are driven just after the falling clock edge and
handshakes are sampled in the read-only phase, so a transfer is recorded exactly when
``valid & ready`` holds at the next rising edge. ``valid`` and ``ready`` can be throttled at random
from a seeded ``random.Random``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cocotb.triggers import FallingEdge, ReadOnly

__all__ = ["Cycle", "StreamDriver", "StreamMonitor", "InOrderScoreboard", "Mismatch"]


class Cycle:
    """A cycle counter shared by the components (incremented at each falling edge).

    Zero-based: the first cycle after :meth:`run` starts is cycle 0, as on the fast path
    (:mod:`lowbit.sim.fast`), so latencies from both paths compare directly.
    """

    def __init__(self, clk):
        self.clk = clk
        self.count = -1

    async def run(self):
        while True:
            await FallingEdge(self.clk)
            self.count += 1


def _port(dut, name, suffix):
    return getattr(dut, f"{name}__{suffix}")


class StreamDriver:
    """Drive beats into the input stream ``name`` of ``dut``; ``valid_prob`` < 1 inserts idles."""

    def __init__(
        self, dut, name: str, clk, *, valid_prob: float = 1.0, rng: random.Random | None = None
    ):
        self.valid = _port(dut, name, "valid")
        self.ready = _port(dut, name, "ready")
        self.payload = _port(dut, name, "payload")
        self.clk, self.valid_prob = clk, valid_prob
        self.rng = rng or random.Random(0)
        self.queue: deque[int] = deque()
        self.valid.value = 0

    def send(self, beats):
        self.queue.extend(beats)

    async def run(self):
        while True:
            await FallingEdge(self.clk)
            if self.queue and (self.valid_prob >= 1.0 or self.rng.random() < self.valid_prob):
                self.payload.value = self.queue[0]
                self.valid.value = 1
                await ReadOnly()
                if int(self.ready.value):
                    self.queue.popleft()
            else:
                self.valid.value = 0


class StreamMonitor:
    """Record every transfer on stream ``name``; drives ``ready`` when ``drive_ready`` is set."""

    def __init__(
        self,
        dut,
        name: str,
        clk,
        cycle: Cycle,
        *,
        drive_ready: bool = False,
        ready_prob: float = 1.0,
        rng: random.Random | None = None,
        callback: Callable[[int, int], None] | None = None,
    ):
        self.valid = _port(dut, name, "valid")
        self.ready = _port(dut, name, "ready")
        self.payload = _port(dut, name, "payload")
        self.clk, self.cycle = clk, cycle
        self.drive_ready, self.ready_prob = drive_ready, ready_prob
        self.rng = rng or random.Random(1)
        self.callback = callback
        self.beats: list[int] = []
        self.cycles: list[int] = []
        if drive_ready:
            self.ready.value = 0

    async def run(self):
        while True:
            await FallingEdge(self.clk)
            if self.drive_ready:
                self.ready.value = int(
                    self.ready_prob >= 1.0 or self.rng.random() < self.ready_prob
                )
            await ReadOnly()
            if int(self.valid.value) and int(self.ready.value):
                word = int(self.payload.value)
                self.beats.append(word)
                self.cycles.append(self.cycle.count)
                if self.callback:
                    self.callback(word, self.cycle.count)


@dataclass(frozen=True)
class Mismatch:
    item: int  # index of the transaction (image) in stream order
    where: str  # which layer / field
    index: int  # element index within the field
    got: int
    expected: int


@dataclass
class InOrderScoreboard:
    """Compare observed transactions with expected ones, in order, with ``==``.

    ``compare(got, expected)`` returns a list of ``(where, index, got, expected)`` differences.
    """

    compare: Callable[[object, object], list[tuple[str, int, int, int]]]
    expected: deque = field(default_factory=deque)
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    mismatched_items: int = 0

    def expect(self, item) -> None:
        self.expected.append(item)

    def observe(self, got) -> None:
        if not self.expected:
            raise AssertionError(
                f"transaction {self.checked}: output with no expected value: {got!r}"
            )
        diffs = self.compare(got, self.expected.popleft())
        if diffs:
            self.mismatched_items += 1
            self.mismatches.extend(Mismatch(self.checked, *d) for d in diffs)
        self.checked += 1
