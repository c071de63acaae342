"""The branch FIFO of a residual block: its minimum depth, and the throughput below it.

A residual block forks a stream (:class:`~lowbit.hw.dag.branch.ForkSpec`) into a long branch and a
shortcut, and joins them again (:class:`~lowbit.hw.dag.branch.AddSpec`). The join takes a beat
only from both sides at once, so the shortcut must hold every beat the fork sent it while the same
beat travels the long branch; a shortcut FIFO (:class:`~lowbit.hw.stream.fifo.FIFOSpec`) too
shallow stalls the fork, which then starves the branch.

The model
---------
The branch is a pipeline of latency ``L`` cycles (a beat taken in cycle ``t`` leaves it in cycle
``t + L``, stalling as a whole: every lowbit unit stalls so), ``L >= 2``; the source offers one beat
every ``P`` cycles (``P = 1``: full rate; a slower stage elsewhere in the pipeline: ``P > 1``); the
sink is always ready. The shortcut holds ``D + 1`` beats (the FIFO's ``D`` and the fork's output
register ``b``). A beat holds its shortcut slot from the cycle the fork takes it until the join
takes it, ``L + 1`` cycles later (the fork's register, then the branch), and the slot can be
written again one cycle after that (the FIFO's ``w_rdy`` follows its registered level): ``L + 2``
cycles per beat per slot, so at most ``D + 1`` beats every ``L + 2`` cycles. The FIFO itself, an
Amaranth ``SyncFIFOBuffered``, passes one beat every two cycles when ``D <= 2`` (its inner FIFO
of ``D - 1 <= 1`` entries cannot take a word while it is full, even in a cycle it is read). So, in
beats per cycle::

    throughput(L, D, P) = min(1 / P, (D + 1) / (L + 2), 1 / 2 if D <= 2 else 1)

and the minimum depth that never starves the pipeline is the smallest ``D`` reaching ``1 / P``::

    D_min = max(ceil((L + 2) / P) - 1, 3 if P == 1 else 1)

A shortcut that holds units of its own after the FIFO (a requantizing threshold, as the mapper
places them: :func:`lowbit.mapping.dag.shortcut_fifo_edges` puts the FIFO right after the fork),
``Ls`` cycles of latency in all and stalling as a whole, holds ``Ls`` more beats in their
registers; each beat's slot is still held ``L + 2`` cycles, so::

    throughput(L, D, P, Ls) = min(1 / P, (D + 1 + Ls) / (L + 2), 1 / 2 if D <= 2 else 1)
    D_min = max(ceil((L + 2) / P) - 1 - Ls, 3 if P == 1 else 1)

Such a branch never deadlocks at any ``D >= 1``: it passes on every beat it takes, so the join
always frees a shortcut slot eventually. A branch that must take ``R`` beats before it gives any
out (its *lead*: an MVTU takes a whole vector, ``MW / SIMD`` beats, before it computes; a sliding
window ``K - 1`` rows and more) deadlocks when the shortcut fills first: the fork stalls once the
shortcut holds ``D + 1`` beats, and the branch has then taken the same ``D + 1``. So::

    deadlocks(D, R) = D + 1 < R,    and D_min is at least R - 1

``tests/test_branch_fifo.py`` builds fork, branch, FIFO and join in the Amaranth simulator and finds
the measured steady-state throughput equal to :func:`residual_throughput` (as a fraction) for every
depth from 1 to beyond :func:`min_branch_fifo_depth`. ``tests/test_dag_branch_fifo.py`` does the
same on the stitched top (:class:`~lowbit.hw.dag.top.DagAccelerator` of a graph's residual block,
``L`` the sum of the long branch's units' ``latency()``, ``P`` the cycles per beat of the unit
feeding the fork, ``Ls`` the shortcut threshold's ``latency()``): cycles per image equal to
:func:`residual_cycles` at ``D_min`` and ``D_min - 1``, with and without a shortcut unit, at
``P = 1`` and ``2``.

Pure Python.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["residual_throughput", "min_branch_fifo_depth", "residual_cycles", "deadlocks"]

MIN_BRANCH_LATENCY = 2
"""The model holds for a branch at least as long as the shortcut FIFO's own latency (2 cycles)."""


def _check(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value!r}")


def residual_throughput(
    latency: int, depth: int, period: int = 1, shortcut_latency: int = 0
) -> Fraction:
    """Steady-state beats per cycle of a residual block whose long branch has ``latency`` cycles,
    with a shortcut FIFO of ``depth`` beats followed by units of ``shortcut_latency`` cycles, and a
    source of one beat every ``period`` cycles (the module docstring's formula)."""
    _check("latency", latency, MIN_BRANCH_LATENCY)
    _check("depth", depth, 1)
    _check("period", period, 1)
    _check("shortcut_latency", shortcut_latency, 0)
    rate = min(Fraction(1, period), Fraction(depth + 1 + shortcut_latency, latency + 2))
    return min(rate, Fraction(1, 2)) if depth <= 2 else rate


def deadlocks(depth: int, lead: int) -> bool:
    """Whether a shortcut FIFO of ``depth`` beats deadlocks the block behind a branch that takes
    ``lead`` beats before it gives its first one: ``depth + 1 < lead``."""
    _check("depth", depth, 1)
    _check("lead", lead, 0)
    return depth + 1 < lead


def min_branch_fifo_depth(
    latency: int, period: int = 1, lead: int = 0, shortcut_latency: int = 0
) -> int:
    """The smallest shortcut FIFO depth at which the block runs at the source's rate (one beat
    every ``period`` cycles) behind a branch of ``latency`` cycles, with shortcut units of
    ``shortcut_latency`` cycles after the FIFO, and does not deadlock behind a branch of ``lead``
    beats (the lead rule counts the FIFO and the fork's register only: a bound with shortcut
    units)."""
    _check("latency", latency, MIN_BRANCH_LATENCY)
    _check("period", period, 1)
    _check("lead", lead, 0)
    _check("shortcut_latency", shortcut_latency, 0)
    rate = math.ceil(Fraction(latency + 2, period)) - 1 - shortcut_latency
    return max(rate, 3 if period == 1 else 1, lead - 1)


def residual_cycles(
    beats: int, latency: int, depth: int, period: int = 1, shortcut_latency: int = 0
) -> Fraction:
    """Steady-state cycles for ``beats`` beats (an image's) through the block: ``beats`` over
    :func:`residual_throughput`."""
    _check("beats", beats, 1)
    return beats / residual_throughput(latency, depth, period, shortcut_latency)
