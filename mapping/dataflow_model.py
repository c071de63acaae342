"""Stream-coupled cycle model of a dataflow pipeline: FIFO depths and input buffering.

The bottleneck model (:func:`lowbit.mapping.pipeline_cycles`) says a pipeline starts an image every
``max`` of its stages' cycles. That holds only when the FIFOs between stages are deep enough. This
module steps the pipeline itself, one iteration per cycle, with blocking reads on empty FIFOs and
blocking writes on full ones, and so predicts the period for *given* FIFO depths and the smallest
depths that reach the bottleneck (what FINN users get from RTL simulation).

The machine
-----------
A pipeline is a source, a chain of :class:`Stage` s and a sink, with a :class:`Fifo` before each
stage and one before the sink (``len(stages) + 1`` FIFOs).

* **source** — writes one word per cycle (the first stage's :attr:`Stage.in_words` per image),
  while its FIFO has room; there is always another image.
* **single-buffered stage** (:attr:`Buffering.SINGLE`, finn-hlslib's
  ``Matrix_Vector_Activate_Batch``) — one loop of ``nf * sf`` iterations per vector, one iteration
  per cycle. Iteration ``(nf, sf)`` reads input word ``sf`` from the FIFO when ``nf == 0`` (keeping
  it in its input buffer) and reuses the buffer when ``nf > 0``; iteration ``(nf, SF - 1)`` writes
  one output word. A read on an empty FIFO or a write on a full one stalls the whole loop for that
  cycle.
* **double-buffered stage** (:attr:`Buffering.DOUBLE`, lowbit's
  :class:`~lowbit.hw.mvtu.unit.MatrixVectorThresholdUnit`) — a ping-pong input buffer of two banks.
  The input side reads one word per cycle into the free bank while one is free; a filled bank is
  handed to the compute side, which runs its ``nf * sf`` iterations once a bank is full (writing
  at ``sf == SF - 1`` as above) and frees the bank at its last iteration.
* **width converter** — ``in_ratio = r`` merges a down-sizing converter into the stage: one FIFO
  word is read at every ``r``-th input word (the other ``r - 1`` come from the converter's
  register). A converter that is its own process with its own FIFO (finn-hlslib's
  ``StreamingDataWidthConverter_Batch``) is a stage of its own: ``Stage(sf=1, nf=r)`` splits one
  word into ``r``, ``Stage(sf=r, nf=1)`` packs ``r`` words into one, ``Stage(sf=1, nf=1)`` copies.
* **sink** — reads one word per cycle whenever its FIFO holds one (always ready).

Timing: every process decides in cycle ``t`` from the FIFO occupancies (and bank flags) at the end
of cycle ``t - 1``; a word written in cycle ``t`` can be read from ``t + 1``, a slot freed in
cycle ``t`` can be written from ``t + 1``. A FIFO of depth 1 thus passes one word every two cycles,
a FIFO of depth 2 one per cycle. Pipeline latency inside a stage: with :attr:`Stage.latency` ``L``
(default 1) an iteration's write happens ``L - 1`` iterations after its read, as in an HLS loop
pipelined at II=1 whose output stage is ``L - 1`` stages behind its input stage; a read that cannot
happen or a write that cannot happen stalls the whole loop for that cycle (Vivado HLS stalls every
stage of a pipeline together).

The simulation skips from event to event (a read, a write, a bank hand-over), so the iterations
between them cost it nothing; it stops when the whole state at an image's completion
repeats, which makes the period exact (:attr:`PipelineTiming.periodic`) and later completions
exact by extrapolation.

Pure Python; no NumPy, no Amaranth.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

__all__ = [
    "Buffering",
    "Stage",
    "Fifo",
    "PipelineTiming",
    "simulate_pipeline",
    "min_fifo_depths",
    "bnn_pynq_lfc_w1a1",
    "BNN_PYNQ_LFC_W1A1_LAYERS",
]


class Buffering(enum.Enum):
    """How a stage holds its input vector: see the module docstring."""

    SINGLE = "single"
    DOUBLE = "double"


def _check_count(name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value!r}")


@dataclass(frozen=True)
class Stage:
    """One process of the pipeline.

    Parameters
    ----------
    name : str
        Reported in :class:`PipelineTiming` and in errors.
    sf : int
        Input words per vector, as the stage consumes them (synapse folds ``MW / SIMD``).
    nf : int
        Output words per vector (neuron folds ``MH / PE``); a vector takes ``nf * sf`` cycles.
    buffering : Buffering or str
        ``"single"`` (finn-hlslib) or ``"double"`` (lowbit's MVTU).
    in_ratio : int
        Stage input words per FIFO word (a down-sizing width converter merged into the stage).
    vectors : int
        Vectors per image (output pixels of a convolution, 1 for a fully connected layer).
    latency : int
        Pipeline depth of the loop: a write lags its iteration's read by ``latency - 1`` iterations.
    """

    name: str
    sf: int
    nf: int
    buffering: Buffering = Buffering.SINGLE
    in_ratio: int = 1
    vectors: int = 1
    latency: int = 1

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, not {self.name!r}")
        for field in ("sf", "nf", "in_ratio", "vectors", "latency"):
            _check_count(field, getattr(self, field))
        if isinstance(self.buffering, str):
            try:
                object.__setattr__(self, "buffering", Buffering(self.buffering))
            except ValueError:
                raise ValueError(
                    f"buffering must be 'single' or 'double', not {self.buffering!r}"
                ) from None
        elif not isinstance(self.buffering, Buffering):
            raise TypeError(f"buffering must be a Buffering or a string, not {self.buffering!r}")
        if (self.sf * self.vectors) % self.in_ratio:
            raise ValueError(
                f"in_ratio ({self.in_ratio}) must divide sf * vectors "
                f"({self.sf} * {self.vectors}) of stage {self.name!r}"
            )

    @property
    def cycles(self) -> int:
        """Cycles per image when never stalled: ``nf * sf * vectors``."""
        return self.nf * self.sf * self.vectors

    @property
    def in_words(self) -> int:
        """FIFO words read per image: ``sf * vectors / in_ratio``."""
        return self.sf * self.vectors // self.in_ratio

    @property
    def out_words(self) -> int:
        """Words written per image: ``nf * vectors``."""
        return self.nf * self.vectors


@dataclass(frozen=True)
class Fifo:
    """A FIFO of ``depth`` words (``depth >= 1``); ``name`` is for reports only."""

    depth: int
    name: str = ""

    def __post_init__(self):
        _check_count("depth", self.depth)
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, not {self.name!r}")


@dataclass(frozen=True)
class PipelineTiming:
    """Result of :func:`simulate_pipeline`; cycles count from 0, the first cycle the source may
    write.

    Attributes
    ----------
    names : tuple of str
        The stages, in order.
    completion : tuple of int
        Cycle in which the sink reads the last word of image ``k``, for each requested image.
    period : int, Fraction or float
        Steady-state cycles per image. Exact (an ``int``, or a ``Fraction`` when the pattern spans
        several images at a non-integer rate) when :attr:`periodic`; otherwise the mean over the
        second half of the simulated images (a ``float``).
    periodic : bool
        The state at an image's completion repeated, so :attr:`period` and the extrapolated
        :attr:`completion` are exact.
    bound : int
        The bottleneck model: ``max`` of the stages' :attr:`Stage.cycles` and the words per image
        of the source and the sink (each moves one word per cycle). ``period >= bound``.
    starved, blocked : tuple
        Per stage, cycles per image in steady state in which the stage (the compute side of a
        double-buffered stage) could not run its iteration for want of input (starved) or of room
        in its output FIFO (blocked); exact like :attr:`period`.
    bottleneck : str
        The stage that stalls least per image in steady state (ties: more :attr:`Stage.cycles`,
        then earlier) — the one that sets the pace.
    simulated_images : int
        Images the simulation completed before it found the period (or gave up).
    """

    names: tuple[str, ...]
    completion: tuple[int, ...]
    period: int | Fraction | float
    periodic: bool
    bound: int
    starved: tuple
    blocked: tuple
    bottleneck: str
    simulated_images: int

    @property
    def stalls(self) -> dict[str, tuple]:
        """``{stage name: (starved, blocked)}``, cycles per image in steady state."""
        return {n: (s, b) for n, s, b in zip(self.names, self.starved, self.blocked)}


# -- the machine ---------------------------------------------------------------------------------


class _Buffer:
    """A FIFO (or a stage's pair of input banks, depth 2, counting full banks)."""

    __slots__ = ("index", "depth", "count", "waiters")

    def __init__(self, index: int, depth: int):
        self.index, self.depth, self.count = index, depth, 0
        self.waiters: list[_Proc] = []


class _Proc:
    """A process: iterations ``it = 0, 1, ...``, one per cycle unless stalled.

    ``event(it)`` returns ``(needs, ops)`` for an iteration that touches a buffer: ``needs`` is a
    list of ``(buffer, want_data)`` conditions checked on the previous cycle's state, ``ops`` a
    list of ``(buffer, delta)`` applied at the end of the cycle. ``next_event(it)`` is the next
    iteration after ``it`` that touches a buffer.
    """

    __slots__ = ("per_image", "stat", "it", "time", "wait", "since", "reason", "stalls")

    def __init__(self, per_image: int, stat: int | None):
        self.per_image = per_image  # iterations per image
        self.stat = stat  # stage index its stalls are reported under, or None
        self.it = 0
        self.time: int | None = 0  # cycle of the next attempt; None while waiting
        self.wait: _Buffer | None = None  # buffer waited on
        self.since = 0  # first stalled cycle of the current wait
        self.reason = 0  # 0 starved, 1 blocked
        self.stalls = [0, 0]

    def event(self, it: int) -> tuple[list, list] | None:
        """``(needs, ops)`` of iteration ``it``, or ``None`` if it touches no buffer."""
        raise NotImplementedError

    def next_event(self, it: int) -> int:
        """The next iteration after ``it`` that touches a buffer."""
        raise NotImplementedError

    def first_event(self) -> int:
        return 0 if self.event(0) is not None else self.next_event(0)


class _Source(_Proc):
    __slots__ = ("out",)

    def __init__(self, words: int, out: _Buffer):
        super().__init__(words, None)
        self.out = out

    def event(self, it):
        return [(self.out, False)], [(self.out, 1)]

    def next_event(self, it):
        return it + 1


class _Sink(_Proc):
    __slots__ = ("inp",)

    def __init__(self, words: int, inp: _Buffer):
        super().__init__(words, None)
        self.inp = inp

    def event(self, it):
        return [(self.inp, True)], [(self.inp, -1)]

    def next_event(self, it):
        return it + 1


class _SingleBuffered(_Proc):
    """finn-hlslib's loop: read at ``nf == 0`` (every ``in_ratio``-th word), write at
    ``sf == SF - 1``."""

    __slots__ = ("sf", "per_vec", "ratio", "inp", "out", "lag")

    def __init__(self, stage: Stage, index: int, inp: _Buffer, out: _Buffer):
        super().__init__(stage.cycles, index)
        self.sf, self.per_vec, self.ratio = stage.sf, stage.sf * stage.nf, stage.in_ratio
        self.inp, self.out, self.lag = inp, out, stage.latency - 1

    def _reads(self, v, j):
        return j < self.sf and (v * self.sf + j) % self.ratio == 0

    def event(self, it):
        v, j = divmod(it, self.per_vec)
        read, write = self._reads(v, j), _writes(it, self.lag, self.sf)
        if not (read or write):
            return None
        needs, ops = [], []
        if read:
            needs.append((self.inp, True))
            ops.append((self.inp, -1))
        if write:
            needs.append((self.out, False))
            ops.append((self.out, 1))
        return needs, ops

    def next_event(self, it):
        it += 1
        write = _next_write(it, self.lag, self.sf)
        while it < write:
            v, j = divmod(it, self.per_vec)
            if j >= self.sf:  # reusing the buffer: no read before the next vector
                it = (v + 1) * self.per_vec
            elif self._reads(v, j):
                return it
            else:
                it += 1
        return write


def _writes(it: int, lag: int, sf: int) -> bool:
    """Iteration slot ``it`` writes: the iteration ``lag`` slots back ends a neuron fold."""
    it -= lag
    return it >= 0 and it % sf == sf - 1


def _next_write(it: int, lag: int, sf: int) -> int:
    """The first slot ``>= it`` that writes."""
    k = max(0, -(-(it - lag - (sf - 1)) // sf))
    return lag + k * sf + sf - 1


class _Loader(_Proc):
    """Input side of a double-buffered stage: one input word per cycle into the free bank."""

    __slots__ = ("sf", "ratio", "inp", "banks")

    def __init__(self, stage: Stage, inp: _Buffer, banks: _Buffer):
        super().__init__(stage.sf * stage.vectors, None)
        self.sf, self.ratio, self.inp, self.banks = stage.sf, stage.in_ratio, inp, banks

    def event(self, it):
        needs, ops = [(self.banks, False)], []
        if it % self.ratio == 0:
            needs.append((self.inp, True))
            ops.append((self.inp, -1))
        if it % self.sf == self.sf - 1:
            ops.append((self.banks, 1))
        return needs, ops

    def next_event(self, it):
        return it + 1


class _Engine(_Proc):
    """Compute side of a double-buffered stage: starts a vector on a full bank, frees it at the
    end."""

    __slots__ = ("sf", "per_vec", "banks", "out", "lag")

    def __init__(self, stage: Stage, index: int, banks: _Buffer, out: _Buffer):
        super().__init__(stage.cycles, index)
        self.sf, self.per_vec, self.banks, self.out = stage.sf, stage.sf * stage.nf, banks, out
        self.lag = stage.latency - 1

    def event(self, it):
        j = it % self.per_vec
        first, last, write = j == 0, j == self.per_vec - 1, _writes(it, self.lag, self.sf)
        if not (first or last or write):
            return None
        needs, ops = [], []
        if first:
            needs.append((self.banks, True))
        if write:
            needs.append((self.out, False))
            ops.append((self.out, 1))
        if last:
            ops.append((self.banks, -1))
        return needs, ops

    def next_event(self, it):
        it += 1
        j = it % self.per_vec
        if j == 0:
            return it
        return min(
            it + self.per_vec - 1 - j, _next_write(it, self.lag, self.sf)
        )  # the vector's last, a write


def _normalise(stages, depths) -> tuple[list[Stage], list[int]]:
    stages = list(stages)
    if not stages:
        raise ValueError("stages must hold at least one Stage, not []")
    for k, s in enumerate(stages):
        if not isinstance(s, Stage):
            raise TypeError(f"stages[{k}] must be a Stage, not {s!r}")
    depths = list(depths)
    if len(depths) != len(stages) + 1:
        raise ValueError(
            f"depths must hold len(stages) + 1 = {len(stages) + 1} FIFO depths (source, "
            f"between stages, sink), not {len(depths)}"
        )
    out = []
    for k, d in enumerate(depths):
        if isinstance(d, Fifo):
            d = d.depth
        _check_count(f"depths[{k}]", d)
        out.append(d)
    for a, b in zip(stages, stages[1:]):
        if a.out_words != b.in_words:
            raise ValueError(
                f"stage {a.name!r} writes {a.out_words} words per image (nf * vectors) but stage "
                f"{b.name!r} reads {b.in_words} (sf * vectors / in_ratio)"
            )
    return stages, out


def _bound(stages: list[Stage]) -> int:
    return max([s.cycles for s in stages] + [stages[0].in_words, stages[-1].out_words])


def _exact(num: int, den: int):
    q = Fraction(num, den)
    return q.numerator if q.denominator == 1 else q


def simulate_pipeline(
    stages: Sequence[Stage],
    depths: Sequence[int | Fifo],
    *,
    images: int = 32,
    max_images: int = 10_000,
) -> PipelineTiming:
    """Step the pipeline until its steady state repeats; see the module docstring for the machine.

    Parameters
    ----------
    stages : sequence of Stage
        The chain; each stage's :attr:`~Stage.out_words` must equal the next one's
        :attr:`~Stage.in_words`.
    depths : sequence of int or Fifo
        ``len(stages) + 1`` FIFO depths: source -> first stage, between stages, last stage -> sink.
    images : int
        Completion times to report (extrapolated exactly once the state repeats; at most
        ``max_images`` of them if it never does).
    max_images : int
        Give up looking for a repeating state after this many images (at least 2; the period is
        then a mean).

    Returns
    -------
    PipelineTiming
    """
    _check_count("images", images)
    _check_count("max_images", max_images, 2)
    stages, depths = _normalise(stages, depths)
    fifos = [_Buffer(k, d) for k, d in enumerate(depths)]
    buffers = list(fifos)
    procs: list[_Proc] = [_Source(stages[0].in_words, fifos[0])]
    for k, s in enumerate(stages):
        if s.buffering is Buffering.SINGLE:
            procs.append(_SingleBuffered(s, k, fifos[k], fifos[k + 1]))
        else:
            banks = _Buffer(len(buffers), 2)
            buffers.append(banks)
            procs += [_Loader(s, fifos[k], banks), _Engine(s, k, banks, fifos[k + 1])]
    sink = _Sink(stages[-1].out_words, fifos[-1])
    procs.append(sink)
    for p in procs:
        p.it = p.first_event()
        p.time = p.it

    out_words = stages[-1].out_words
    completion: list[int] = []
    seen: dict[tuple, int] = {}
    marks: list[list[list[int]]] = []  # cumulative stalls per stage at each completion
    found = None
    while found is None and len(completion) < max_images:
        t = min([p.time for p in procs if p.time is not None])  # a chain never deadlocks
        fired, changed = [], set()
        for p in procs:
            if p.time != t:
                continue
            event = p.event(p.it)
            if event is None:  # p.it comes from first_event / next_event: it touches a buffer
                raise RuntimeError(f"iteration {p.it} of {type(p).__name__} touches no buffer")
            needs, ops = event
            for buf, want_data in needs:
                if (buf.count == 0) if want_data else (buf.count >= buf.depth):
                    p.time, p.wait, p.since, p.reason = None, buf, t, 0 if want_data else 1
                    buf.waiters.append(p)
                    break
            else:
                fired.append((p, ops))
        for p, ops in fired:
            for buf, delta in ops:
                buf.count += delta
                changed.add(buf)
            nxt = p.next_event(p.it)
            p.time, p.it = t + nxt - p.it, nxt
        for buf in changed:
            for p in buf.waiters:
                p.stalls[p.reason] += t + 1 - p.since
                p.time, p.wait = t + 1, None
            buf.waiters.clear()
        if fired and fired[-1][0] is sink and sink.it % out_words == 0:  # an image's last word
            k = len(completion)
            completion.append(t)
            marks.append(_stall_marks(procs, len(stages), t))
            key = _state(procs, buffers, k + 1, t)
            if key in seen:
                found = (seen[key], k)
            else:
                seen[key] = k

    names = tuple(s.name for s in stages)
    n = len(completion)
    if found is not None:
        j, k = found
        span, count = completion[k] - completion[j], k - j
        while len(completion) < images:
            completion.append(completion[-count] + span)
        period = _exact(span, count)
        starved = tuple(_exact(marks[k][i][0] - marks[j][i][0], count) for i in range(len(stages)))
        blocked = tuple(_exact(marks[k][i][1] - marks[j][i][1], count) for i in range(len(stages)))
    else:  # no repetition within max_images: means over the second half
        j, k = n // 2, n - 1
        count = max(k - j, 1)
        period = (completion[k] - completion[j]) / count
        starved = tuple((marks[k][i][0] - marks[j][i][0]) / count for i in range(len(stages)))
        blocked = tuple((marks[k][i][1] - marks[j][i][1]) / count for i in range(len(stages)))
    order = sorted(
        range(len(stages)), key=lambda i: (starved[i] + blocked[i], -stages[i].cycles, i)
    )
    return PipelineTiming(
        names=names,
        completion=tuple(completion[:images]),
        period=period,
        periodic=found is not None,
        bound=_bound(stages),
        starved=starved,
        blocked=blocked,
        bottleneck=names[order[0]],
        simulated_images=n,
    )


def _stall_marks(procs, n_stages: int, t: int) -> list[list[int]]:
    """Cumulative (starved, blocked) per stage up to and including cycle ``t``."""
    marks = [[0, 0] for _ in range(n_stages)]
    for p in procs:
        if p.stat is None:
            continue
        s = marks[p.stat]
        s[0] += p.stalls[0]
        s[1] += p.stalls[1]
        if p.time is None:
            s[p.reason] += t + 1 - p.since
    return marks


def _state(procs, buffers, done: int, t: int) -> tuple:
    """Everything that decides the future, relative to the ``done``-th completion at cycle ``t``."""
    key = [b.count for b in buffers]
    for p in procs:
        key.append(p.it - done * p.per_image)
        key.append(p.time - t if p.time is not None else (p.wait.index, p.reason, p.since - t))
    return tuple(key)


# -- FIFO sizing ---------------------------------------------------------------------------------


def min_fifo_depths(
    stages: Sequence[Stage], *, start: Sequence[int | Fifo] | None = None, max_depth: int = 1 << 20
) -> tuple[int, ...]:
    """Smallest FIFO depths for which the period equals the bottleneck
    (:attr:`PipelineTiming.bound`).

    FIFOs are sized one at a time, sink side first: each is the smallest depth (found by doubling
    from 1, then bisecting) that keeps the bound with the FIFOs after it at their new sizes and
    those before it at ``start``. The period never grows when a FIFO is deepened, so in the result
    every FIFO is individually minimal: one word less on any one of them misses the bound. Other
    minimal sets may exist (a converter's stream can take words a layer's FIFO would otherwise
    hold); sizing from the sink leaves each consumer's FIFO to absorb its own input burst.

    Parameters
    ----------
    stages : sequence of Stage
    start : sequence of int or Fifo, optional
        Depths that reach the bound; by default each FIFO holds two images of its words (checked,
        and doubled until the bound is reached).
    max_depth : int
        Give up (``ValueError``) if ``start`` would have to exceed this.

    Returns
    -------
    tuple of int
        ``len(stages) + 1`` depths, as :func:`simulate_pipeline` takes them.
    """
    stages = list(stages)
    _check_count("max_depth", max_depth)
    if start is None:
        _normalise(stages, [1] * (len(stages) + 1))
        words = [stages[0].in_words] + [s.out_words for s in stages]
        depths = [max(2, 2 * w) for w in words]
    else:
        stages, depths = _normalise(stages, start)
    bound = _bound(stages)

    def reaches(ds) -> bool:
        return simulate_pipeline(stages, ds, images=1).period == bound

    while not reaches(depths):
        if start is not None or max(depths) * 2 > max_depth:
            raise ValueError(
                f"start depths {tuple(depths)} do not reach the bound of {bound} cycles per image"
            )
        depths = [2 * d for d in depths]
    for k in reversed(range(len(depths))):
        trial = list(depths)
        lo, hi = 0, 1  # lo misses the bound (0 stands for "never"), hi is the candidate
        while hi < depths[k]:
            trial[k] = hi
            if reaches(trial):
                break
            lo, hi = hi, 2 * hi
        hi = min(hi, depths[k])
        while hi - lo > 1:
            mid = (lo + hi) // 2
            trial[k] = mid
            if reaches(trial):
                hi = mid
            else:
                lo = mid
        depths[k] = hi
    return tuple(depths)


# -- BNN-PYNQ LFC-W1A1 ---------------------------------------------------------------------------

BNN_PYNQ_LFC_W1A1_LAYERS = (
    (832, 1024, 64, 32),
    (1024, 1024, 32, 64),
    (1024, 1024, 64, 32),
    (1024, 64, 8, 16),
)
"""``(MW, MH, SIMD, PE)`` of L0..L3 (``bnn/src/network/lfcW1A1/hw/config.h`` in Xilinx/BNN-PYNQ)."""


def bnn_pynq_lfc_w1a1(
    inter_depths: Sequence[int] | None = None,
) -> tuple[tuple[Stage, ...], tuple[Fifo, ...]]:
    """The dataflow processes and streams of BNN-PYNQ's LFC-W1A1 accelerator.

    From ``bnn/src/network/lfcW1A1/hw/top.cpp`` (Xilinx/BNN-PYNQ) and the finn-hlslib it pins
    (``bnn/src/library/finn-hlslib`` at 8b7f5f5): ``Mem2Stream_Batch`` writes 13 words of 64 bits
    per image into ``memInStrm`` (depth 1024); four ``StreamingFCLayer_Batch`` (each a
    single-buffered ``Matrix_Vector_Activate_Batch``) are joined by ``inter0``, ``inter1``,
    ``inter2`` of depth ``512 / Lx_PE`` = 16, 8, 16; ``Stream2Mem_Batch`` drains ``memOutStrm``
    (depth 1024). ``StreamingFCLayer_Batch`` adds a width converter only where the stream and the
    layer widths differ (``WidthAdjustedInputStream`` / ``WidthAdjustedOutputStream``): before L3,
    32 bits (L2's 32 PE) into L3's SIMD of 8 — a process splitting one word into 4, with a stream
    of the default depth 2 to L3 — and after L3, L3's 16 PE outputs of 1 bit packed 4 to a 64-bit
    word, through another depth-2 stream. All other widths match (64, 32, 64 bits), so no converter.

    Parameters
    ----------
    inter_depths : sequence of 3 ints, optional
        Depths of ``inter0..2``; default the published 16, 8, 16 (``MH / PE`` = 32, 16, 32 is what
        the source's comment asks for "a smooth operation").

    Returns
    -------
    (stages, fifos)
        Six stages (L0, L1, L2, the 32->8 converter, L3, the 16->64 converter) and the seven
        streams before each stage and before the sink, as :func:`simulate_pipeline` takes them.
    """
    if inter_depths is None:
        inter_depths = tuple(512 // pe for _, _, _, pe in BNN_PYNQ_LFC_W1A1_LAYERS[:3])
    inter_depths = tuple(inter_depths)
    if len(inter_depths) != 3:
        raise ValueError(f"inter_depths must hold 3 depths (inter0..2), not {len(inter_depths)}")
    (mw0, mh0, s0, p0), (mw1, mh1, s1, p1), (mw2, mh2, s2, p2), (mw3, mh3, s3, p3) = (
        BNN_PYNQ_LFC_W1A1_LAYERS
    )
    split = (p2 * 1) // s3  # 32-bit words of L2 into 8-bit words of L3: 4
    pack = 64 // (p3 * 1)  # 16-bit words of L3 into 64-bit words: 4
    stages = (
        Stage("L0", mw0 // s0, mh0 // p0),
        Stage("L1", mw1 // s1, mh1 // p1),
        Stage("L2", mw2 // s2, mh2 // p2),
        Stage("dwc_32_8", 1, split, vectors=mh2 // p2),
        Stage("L3", mw3 // s3, mh3 // p3),
        Stage("dwc_16_64", pack, 1, vectors=(mh3 // p3) // pack),
    )
    fifos = (
        Fifo(1024, "memInStrm"),
        Fifo(inter_depths[0], "inter0"),
        Fifo(inter_depths[1], "inter1"),
        Fifo(inter_depths[2], "inter2"),
        Fifo(2, "wa_in"),
        Fifo(2, "wa_out"),
        Fifo(1024, "memOutStrm"),
    )
    return stages, fifos
