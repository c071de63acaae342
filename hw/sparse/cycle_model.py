"""Cycle model of the EIE-style sparse engine (:class:`lowbit.hw.sparse.engine.SparseEngine`).

The model steps the same registers as the hardware, one clock cycle at a time, at the level of the
engine's units (it is the machine, not a formula, so measured cycles equal it exactly):

* **non-zero detection** — an input beat holds ``lanes`` activations; the leading-non-zero
  detector broadcasts one ``(value, column)`` pair per cycle, lowest lane first, to every PE's
  activation queue. A beat is accepted when the previous one has no non-zero left (a beat of
  zeros costs one cycle). Broadcasting stalls while **any** queue is full (``depth`` entries).
* **pointer read** — a PE pops its queue head when its pointer stage is free and reads the
  column's ``(start, end)`` pointers (one cycle, a synchronous memory).
* **sparse-matrix read** — the entry stage walks ``start .. end-1``, one entry per cycle (one word
  of ``entries_per_word`` entries is read per cycle). An empty column leaves the pointer stage at
  once, even while the entry stage is busy; a non-empty one moves into the entry stage in the cycle
  its previous column issues its last entry.
* **padding skip** — when the decode stage holds a padding entry whose successor in the column lies
  in the same memory word, it consumes both in one cycle and the entry stage, which holds that
  successor, moves on to the one after (if the successor was the column's last entry, the entry
  stage's slot is simply squashed). So a column costs :func:`column_steps` cycles, not its entries;
  this depends on the data only, which is why the model takes per-column step counts.
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

__all__ = ["SparseTiming", "engine_cycles", "column_steps", "column_walk", "OUTPUT_LATENCY"]

OUTPUT_LATENCY = 3
"""Cycles from the cycle every unit is idle to the first output beat accepted, plus one (inclusive
count)."""


@dataclass(frozen=True)
class SparseTiming:
    """Cycles of one vector: ``cycles`` in all; ``compute`` until every unit is idle (output
    excluded); ``stall`` cycles in which a broadcast waited for a full queue; ``broadcasts``
    non-zero activations; ``entries`` entry-stage cycles of all PEs (the ``column_entries`` of the
    active columns); ``last_accept`` cycles from the first input beat accepted to the last (0 for
    a vector of one beat)."""

    cycles: int
    compute: int
    stall: int
    broadcasts: int
    entries: int
    last_accept: int = 0


def column_steps(image, entries_per_word: int) -> np.ndarray:
    """``(pes, cols)``: cycles the entry stage spends on each column of each PE of ``image`` (a
    :class:`~lowbit.sw_reference.sparse.SparseImage`), with the padding skip
    (:func:`column_walk`)."""
    return column_walk(image, entries_per_word)[0]


def column_walk(image, entries_per_word: int) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, squashed)``, both ``(pes, cols)``: entry-stage cycles per column, and whether the
    column's last entry-stage cycle is squashed (its entry already consumed by a padding skip).

    Walk of one column, as the hardware does it: the entry stage issues ``k`` in one cycle, the
    decode stage sees it in the next, when the entry stage holds ``k + 1``. If entry ``k`` is
    padding, ``k + 1`` is in the column and ``k mod E != E - 1`` (same word), the entry stage issues
    ``k + 2`` instead of ``k + 1``, saving a cycle unless ``k + 1`` was the last entry (then its
    slot is squashed).
    """
    E = int(entries_per_word)
    if E < 1 or E & (E - 1):
        raise ValueError(f"entries_per_word must be a power of two, not {entries_per_word!r}")
    steps = np.zeros((image.pes, image.cols), dtype=np.int64)
    squashed = np.zeros((image.pes, image.cols), dtype=bool)
    for p, pe in enumerate(image.pe_images):
        pad = np.asarray(pe.v) == 0
        for j in range(image.cols):
            start, end = int(pe.ptr[j]), int(pe.ptr[j + 1])
            if start == end:
                continue
            k, m, n = start, None, 0  # entry-stage entry, decode-stage entry, cycles
            while True:
                skip = E > 1 and m is not None and pad[m] and m + 1 < end and m % E != E - 1
                eff = k + 1 if skip else k
                n += 1
                if eff + 1 >= end:
                    squashed[p, j] = eff >= end
                    break
                m, k = eff, eff + 1
            steps[p, j] = n
    return steps, squashed


def engine_cycles(
    column_entries, x, *, depth: int, lanes: int, rows: int, squashed=None
) -> SparseTiming:
    """Cycle-exact timing of the engine on activation vector ``x``.

    Parameters
    ----------
    column_entries : array of shape (pes, cols)
        Cycles the entry stage spends on each column in each PE: :func:`column_steps` (with
        ``entries_per_word == 1`` these are the entries, ``SparseImage.column_entries()``).
    squashed : array of shape (pes, cols), optional
        Whether a column's last entry-stage cycle issues nothing (:func:`column_walk`); such a
        cycle leaves the decode stage empty, which the end-of-vector idle detection sees.
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
    sq = np.zeros(cnt.shape, dtype=bool) if squashed is None else np.asarray(squashed, dtype=bool)
    if sq.shape != cnt.shape:
        raise ValueError(
            f"squashed must have the shape of column_entries {cnt.shape}, not {sq.shape}"
        )
    squash = [list(map(bool, row)) for row in sq]

    b, hv = 0, False
    hmask: list[np.intp] = []  # the columns of the current beat still to broadcast
    queues: list[deque[int]] = [deque() for _ in range(pes)]
    pv, pcol = [False] * pes, [0] * pes
    kv, kleft, kcol = [False] * pes, [0] * pes, [0] * pes
    mv, av = [False] * pes, [False] * pes
    stall = broadcasts = last_accept = 0
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
        idle = (
            b == beats
            and not hv
            and not any(queues[p] or pv[p] or kv[p] or mv[p] or av[p] for p in range(pes))
        )
        if idle:
            groups = -(-rows // pes)
            total = int(cnt.sum(axis=0)[nz].sum()) if len(nz) else 0
            return SparseTiming(
                t + groups + OUTPUT_LATENCY, t, stall, broadcasts, total, last_accept
            )
        # Register updates at the end of cycle t.
        for p in range(pes):
            k_last = kv[p] and kleft[p] == 1
            k_free = not kv[p] or k_last
            empty = pv[p] and counts[p][pcol[p]] == 0
            p_take = pv[p] and (k_free or empty)
            pop = bool(queues[p]) and (not pv[p] or p_take)
            av[p], mv[p] = mv[p], kv[p] and not (k_last and squash[p][kcol[p]])
            if p_take and not empty:
                kv[p], kleft[p], kcol[p] = True, counts[p][pcol[p]], pcol[p]
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
            last_accept = t
        elif beat_done:
            hv, hmask = False, []
        else:
            hmask = rem
        t += 1
