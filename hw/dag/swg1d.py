"""The 1-D sliding-window generator: the windows of a streamed sequence, for 1-D convolutions.

Input: a sequence ``(L, C)`` in order, channels last, ``SIMD`` channels of one position per beat
(``C / SIMD`` beats per position). Output: for every output position ``o`` its ``K x C`` window in
``(k, c)`` order (:func:`lowbit.sw_reference.sliding_window_1d`), ``SIMD`` elements per beat: the
input vector of an MVTU or the depthwise engine with the same ``SIMD``/``PE``. Window positions
outside the sequence (``pad``) read as ``pad_value``.

The structure is the 2-D generator's (:mod:`lowbit.hw.stream.swg`) with a position where it has an
image row: a ring of ``R = K + max(K, S)`` positions in one memory (``R * C / SIMD`` words); the
reader starts an output position once the positions it needs are complete (for the last one of a
sequence, all of them) and releases the positions the next one no longer needs; ``R`` leaves room
for the next sequence's first ``K`` positions, so back-to-back sequences do not stall. Read
pipeline: issue -> memory read -> output register, stalled as a whole while the output register is
full and not accepted.

:meth:`SWG1DSpec.cycles` replays this position by position (:func:`steady_cycles_1d`) and is exact;
``max(L, OL * K) * C / SIMD`` is its lower bound.

This module imports no Amaranth; :meth:`SWG1DSpec.create` builds
:class:`~lowbit.hw.dag.swg1d_unit.SlidingWindow1DGenerator`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from ...ir.datatypes import DataType, Kind
from ...ir.graph import SlidingWindow1D
from ...ir.resources import Resources
from ..cost import ram_resources

__all__ = ["SWG1DSpec", "steady_cycles_1d"]


def _check_count(name: str, v, lo: int = 1) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{name} must be an integer, not {v!r}")
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")


@dataclass(frozen=True, eq=False)
class SWG1DSpec:
    """A 1-D sliding-window generator for ``node`` on sequences of ``in_shape`` ``(L, C)`` of
    ``dtype``; ``simd`` channels per beat in and out (``simd`` divides ``C``)."""

    node: SlidingWindow1D
    in_shape: tuple[int, int]
    dtype: DataType
    simd: int

    ENGINE = "-"

    def __post_init__(self):
        if not isinstance(self.node, SlidingWindow1D):
            raise TypeError(f"node must be a SlidingWindow1D, not {self.node!r}")
        if not isinstance(self.dtype, DataType):
            raise TypeError(f"dtype must be a DataType, not {self.dtype!r}")
        shape = tuple(self.in_shape)
        if len(shape) != 2:
            raise ValueError(f"node {self.node.name!r}: in_shape must be (L, C), not {shape!r}")
        for name, v in zip("LC", shape):
            _check_count(f"node {self.node.name!r}: {name}", int(v))
        object.__setattr__(self, "in_shape", tuple(int(v) for v in shape))
        _check_count("SIMD", self.simd)
        if self.channels % self.simd:
            raise ValueError(
                f"SIMD ({self.simd}) must divide the channels C ({self.channels}) "
                f"of node {self.node.name!r}"
            )
        if self.node.pad >= self.node.kernel:
            raise ValueError(
                f"node {self.node.name!r}: pad ({self.node.pad}) must be less than the kernel "
                f"({self.node.kernel})"
            )
        self.node.infer(self.in_shape, self.dtype)  # raises with the node's name if it does not fit

    @property
    def length(self) -> int:
        return self.in_shape[0]

    @property
    def channels(self) -> int:
        return self.in_shape[1]

    @property
    def channel_folds(self) -> int:
        return self.channels // self.simd

    @property
    def out_length(self) -> int:
        return self.node.out_dim(self.length)

    @property
    def positions(self) -> int:
        """Positions held by the ring: ``K + max(K, S)``."""
        return self.node.kernel + max(self.node.kernel, self.node.stride)

    @property
    def elem_bits(self) -> int:
        return 1 if self.dtype.kind is Kind.BIPOLAR else self.dtype.bits

    in_elems = out_elems = property(lambda self: self.simd)
    in_bits = out_bits = property(lambda self: self.elem_bits)
    in_size = property(lambda self: self.length * self.channels)

    @property
    def out_size(self) -> int:
        """Elements of the windows of one sequence: ``OL * K * C``."""
        return self.out_length * self.node.kernel * self.channels

    def cycles(self) -> int:
        """Cycles per sequence in steady state, exactly (:func:`steady_cycles_1d`)."""
        n = self.node
        return steady_cycles_1d(
            self.length, self.channel_folds, n.kernel, n.stride, n.pad, self.positions
        )

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        return self.cycles()

    def resources(self) -> Resources:
        """Estimate: the ring as a RAM, plus counters and the address arithmetic."""
        depth = self.positions * self.channel_folds
        width = self.simd * self.elem_bits
        counters = 6 * (depth.bit_length() + 8)
        return ram_resources(depth, width) + Resources(
            lut=counters + width, ff=counters + 2 * width
        )

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Windows of ``x`` ``(B, L, C)``: ``(B, OL, K * C)``."""
        return self.node.reference(x)

    def create(self):
        from .swg1d_unit import SlidingWindow1DGenerator

        return SlidingWindow1DGenerator(self)


def _plan(length: int, k: int, s: int, p: int) -> list[tuple[int, int]]:
    """Per output position: ``(positions of the sequence complete before it starts, positions
    released after)``."""
    ol = (length + 2 * p - k) // s + 1
    plan = []
    for o in range(ol):
        i0 = o * s - p
        last = o == ol - 1
        need = length if last or i0 + max(k, s) > length else i0 + max(k, s)
        nxt = length if last else max(i0 + s, 0)
        plan.append((need, nxt - max(i0, 0)))
    return plan


def steady_cycles_1d(length: int, cf: int, k: int, s: int, p: int, positions: int) -> int:
    """Steady-state cycles per sequence of the generator with ``valid`` and ``ready`` always high:
    sequences of ``length`` positions of ``cf`` beats, kernel ``k``, stride ``s``, padding ``p``,
    a ring of ``positions``.

    A replay of the RTL position by position, in cycles: the writer fills position ``j`` (``cf``
    consecutive cycles) once position ``j - 1`` is written and at least ``j - positions + 1``
    positions have been released; the reader issues the ``K * cf`` beats of an output position on
    consecutive cycles from the cycle after the positions it needs are complete (and its previous
    output is issued), and releases positions the cycle after its last beat. The replay runs
    sequence after sequence until the state (relative to the last release) repeats (the mean over
    the period, rounded up, were it longer than one sequence).
    """
    beats = k * cf
    plan = _plan(length, k, s, p)
    done: list[int] = []  # writer position j (over all sequences): cycle of its last word
    freed: list[int] = []  # reader output r: first cycle its release counts
    released: list[int] = []  # positions released once output r is done (cumulative)
    seen: dict[tuple, int] = {}
    ends: list[int] = []

    def free_at(n: int) -> int:
        return 0 if n <= 0 else freed[bisect.bisect_left(released, n)]

    for seq in range(positions * (cf + beats + 2) + 8):
        for need, release in plan:
            last_needed = seq * length + need - 1
            while len(done) <= last_needed:
                j = len(done)
                start = max(done[-1] + 1 if done else 0, free_at(j - positions + 1))
                done.append(start + cf - 1)
            start = max(freed[-1] if freed else 0, done[last_needed] + 1)
            freed.append(start + beats)
            released.append((released[-1] if released else 0) + release)
        ref, base = freed[-1], (seq + 1) * length
        ends.append(ref)
        keep = bisect.bisect_left(released, len(done) - positions + 1)
        state = (
            len(done) - base,
            done[-1] - ref,
            tuple(d - ref for d in done[base:]),
            tuple((f - ref, r - base) for f, r in zip(freed[keep:], released[keep:])),
        )
        if state in seen:
            first = seen[state]
            return -(-(ends[seq] - ends[first]) // (seq - first))
        seen[state] = seq
    raise AssertionError("the replay of the 1-D sliding-window generator found no period")
