"""Cycle model of the EIE-style sparse engine (:class:`lowbit.hw.sparse.SparseEngine`).

The model steps the same registers as the hardware, one clock cycle at a time, at the level of the
engine's units (it is the machine, not a formula, so measured cycles equal it exactly):

* **non-zero detection** — an input beat holds ``lanes`` activations; the leading-non-zero
  detector broadcasts one ``(value, column)`` pair per cycle, lowest lane first, to every PE's
  activation queue. A beat is accepted when the previous one has no non-zero left (a beat of
  zeros costs one cycle). Broadcasting stalls while **any** queue is full (``depth`` entries).
* **pointer read** — a PE pops its queue head when its pointer stage is free and reads the
  column's ``(start, end)`` pointers (one cycle, a synchronous memory).
* **sparse-matrix read** — the entry stage walks ``start .. end-1``, one entry per cycle (one word of
  ``entries_per_word`` entries is read per cycle; the word width does not change the timing). An
  empty column leaves the pointer stage at once, even while the entry stage is busy; a non-empty
  one moves into the entry stage in the cycle its previous column issues its last entry.
* **arithmetic** — two more stages (codebook look-up and multiply; accumulate), never stalled: a
  back-to-back update of the same accumulator takes the bypass instead of waiting.
* **output** — when every unit is empty, the accumulators are read out one beat of ``pes`` rows per
  cycle (``ceil(rows / pes)`` beats) and cleared; then the next vector may start.

Cycles are counted from the cycle the vector's first beat is accepted to the cycle its last
output beat is accepted, inclusive, with the input always valid and the output always ready.

NumPy only; no Amaranth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["SparseTiming", "engine_cycles", "OUTPUT_LATENCY"]

OUTPUT_LATENCY = 3
"""Cycles from the cycle every unit is idle to the first output beat accepted, plus one (inclusive count)."""


@dataclass(frozen=True)
class SparseTiming:
    """Cycles of one vector: ``cycles`` in all; ``compute`` until every unit is idle (output excluded);
    ``stall`` cycles in which a broadcast waited for a full queue; ``broadcasts`` non-zero activations;
    ``entries`` entries processed by all PEs (padding included)."""

    cycles: int
    compute: int
    stall: int
    broadcasts: int
    entries: int


def engine_cycles(column_entries, x, *, depth: int, lanes: int, rows: int) -> SparseTiming:
    """Cycle-exact timing of the engine on activation vector ``x``.

    Parameters
    ----------
    column_entries : array of shape (pes, cols)
        Entries (padding included) of each column in each PE (``SparseImage.column_entries()``).
    x : array of shape (cols,)
        The activations; only which are non-zero matters.
    depth, lanes, rows
        Activation-queue depth, activations per input beat, rows of the matrix.
    """
    cnt = np.asarray(column_entries, dtype=np.int64)
    if cnt.ndim != 2:
        raise ValueError(f"column_entries must be a (pes, cols) array, not shape {cnt.shape}")
    pes, cols = cnt.shape
    x = np.asarray(x)
    if x.shape != (cols,):
        raise ValueError(f"x must have shape ({cols},) to match column_entries, not {x.shape}")
    for name, v in (("depth", depth), ("lanes", lanes), ("rows", rows)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    beats = -(-cols // lanes)
    nz = np.flatnonzero(x)
    beat_cols = [list(nz[(nz >= b * lanes) & (nz < (b + 1) * lanes)]) for b in range(beats)]
    counts = [list(map(int, row)) for row in cnt]

    b, hv, hmask = 0, False, []
    queues = [deque() for _ in range(pes)]
    pv, pcol = [False] * pes, [0] * pes
    kv, kleft = [False] * pes, [0] * pes
    mv, av = [False] * pes, [False] * pes
    stall = broadcasts = 0
    t = 0
    while True:
        # Combinational decisions from the registers at the start of cycle t.
        space = all(len(q) < depth for q in queues)
        has = hv and bool(hmask)
        bcast = has and space
        stall += has and not space
        rem = hmask[1:] if bcast else hmask
        beat_done = hv and not rem
        accept = b < beats and (not hv or beat_done)
        idle = (b == beats and not hv
                and not any(queues[p] or pv[p] or kv[p] or mv[p] or av[p] for p in range(pes)))
        if idle:
            groups = -(-rows // pes)
            total = int(cnt.sum(axis=0)[nz].sum()) if len(nz) else 0
            return SparseTiming(t + groups + OUTPUT_LATENCY, t, stall, broadcasts, total)
        # Register updates at the end of cycle t.
        for p in range(pes):
            k_last = kv[p] and kleft[p] == 1
            k_free = not kv[p] or k_last
            empty = pv[p] and counts[p][pcol[p]] == 0
            p_take = pv[p] and (k_free or empty)
            pop = bool(queues[p]) and (not pv[p] or p_take)
            av[p], mv[p] = mv[p], kv[p]
            if p_take and not empty:
                kv[p], kleft[p] = True, counts[p][pcol[p]]
            elif kv[p]:
                if k_last:
                    kv[p] = False
                else:
                    kleft[p] -= 1
            if pop:
                pv[p], pcol[p] = True, queues[p].popleft()
            elif p_take:
                pv[p] = False
            if bcast:
                queues[p].append(int(hmask[0]))
        broadcasts += bcast
        if accept:
            hv, hmask = True, beat_cols[b]
            b += 1
        elif beat_done:
            hv, hmask = False, []
        else:
            hmask = rem
        t += 1
