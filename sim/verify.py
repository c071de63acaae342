"""Whole-dataset verification on the fast path: every image through the RTL, compared with ``==``.

``verify_fast`` streams all images through the compiled Verilated model, once back to back
(measuring cycles per image) and then under seeded random ``valid``/``ready`` patterns, and
compares every score and label with the integer oracle (the label: the graph's class decision,
:meth:`~lowbit.ir.graph.IntegerGraph.decide`, through its class map when it has one). It stops at
the first mismatching run, names the image, the layer output and the element with both values,
and writes a VCD of the cycles around that image's output from a traced rebuild of the same
design.

Cycles: the ``steady`` run (``valid`` and ``ready`` always high) measures the cycle each result
leaves. With the design's :class:`~lowbit.mapping.Schedule`, :class:`CyclePrediction` sets them
beside the prediction: the schedule's cycles per image (for a design with a sparse-engine layer an
*estimate* at the layer's assumed activation density) and, for such a design, the exact figure from
the data (:func:`~lowbit.mapping.sparse_timing.sparse_pipeline_timing`: the engine's cycle model on
each image's own input vector to that layer), whose per-image output cycles must equal the measured
ones with ``==`` (a difference fails the verification, like a wrong score).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..boards import get_board
from ..hw.codec import StreamFormat, decode_results, input_words
from ..ir.graph import IntegerGraph
from ..mapping.schedule import Schedule, ddr_stream_bits, pipeline_cycles, vectors_per_image
from ..mapping.sparse_timing import sparse_layer_index, sparse_pipeline_timing
from .fast import VerilatedModel

__all__ = [
    "Pattern",
    "FastMismatch",
    "FastReport",
    "CyclePrediction",
    "verify_fast",
    "default_patterns",
    "predict_cycles",
    "steady_cycles_per_image",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pattern:
    """A handshake pattern: ``valid_prob``/``ready_prob`` < 1 draw 0/1 patterns from ``seed``."""

    name: str
    valid_prob: float = 1.0
    ready_prob: float = 1.0
    seed: int = 0
    length: int = 4099  # a prime, so the two patterns do not line up with the image period

    def arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        rng = np.random.default_rng(self.seed)
        v = (
            None
            if self.valid_prob >= 1
            else (rng.random(self.length) < self.valid_prob).astype(np.uint8)
        )
        r = (
            None
            if self.ready_prob >= 1
            else (rng.random(self.length + 2) < self.ready_prob).astype(np.uint8)
        )
        return v, r


def default_patterns(seeds=(1, 2)) -> list[Pattern]:
    return [Pattern("steady")] + [Pattern(f"throttled-seed{s}", 0.6, 0.5, s) for s in seeds]


@dataclass(frozen=True)
class FastMismatch:
    run: str
    image: int
    where: str
    index: int
    got: int
    expected: int

    def __str__(self) -> str:
        return (
            f"run {self.run}: image {self.image}: {self.where}[{self.index}] "
            f"got {self.got}, expected {self.expected}"
        )


def steady_cycles_per_image(out_cycles) -> float | None:
    """Cycles per image between the results of a run: the mean interval after the first tenth of
    the images (at least one) is dropped as warm-up; ``None`` with fewer than three results."""
    oc = np.asarray(out_cycles)
    warm = min(len(oc) - 1, max(1, len(oc) // 10))
    return float(oc[-1] - oc[warm]) / (len(oc) - 1 - warm) if len(oc) - 1 > warm else None


@dataclass(frozen=True, eq=False)
class CyclePrediction:
    """The predicted cycles of a design on given images, and how the ``steady`` run compares.

    Attributes
    ----------
    estimate : int
        The schedule's cycles per image (its bottleneck). With a sparse-engine layer this takes
        that layer at its assumed activation density: an estimate.
    sparse_layer : str or None
        The layer on the sparse engine, if any.
    out_cycles : ndarray or None
        With a sparse layer, the exact data-driven prediction of the cycle each image's result
        leaves, counted from image 0's; ``None`` without a sparse layer or when the design lies
        outside the exact model (then ``reason`` says why).
    exact : float or None
        Cycles per image of ``out_cycles`` (:func:`steady_cycles_per_image`).
    reason : str or None
        Why there is no exact figure for a design with a sparse layer.
    measured : ndarray or None
        The measured output cycles of the ``steady`` run, counted from image 0's result.
    """

    estimate: int
    sparse_layer: str | None = None
    out_cycles: np.ndarray | None = None
    exact: float | None = None
    reason: str | None = None
    measured: np.ndarray | None = None

    @property
    def equal(self) -> bool | None:
        """Every predicted output cycle equals the measured one (``None``: nothing to compare)."""
        if self.out_cycles is None or self.measured is None:
            return None
        return bool(np.array_equal(self.out_cycles, self.measured))

    @property
    def first_difference(self) -> tuple[int, int, int | None] | None:
        """``(image, predicted, measured)`` of the first image whose result leaves at another
        cycle than predicted (``measured`` ``None`` when the run produced fewer results)."""
        if self.equal is not False:
            return None
        p, m = self.out_cycles, self.measured
        assert p is not None and m is not None
        n = min(len(p), len(m))
        bad = np.flatnonzero(p[:n] != m[:n])
        k = int(bad[0]) if len(bad) else n
        return k, int(p[k]), int(m[k]) if k < len(m) else None

    def with_measured(self, out_cycles) -> "CyclePrediction":
        oc = np.asarray(out_cycles, dtype=np.int64)
        return replace(self, measured=oc - oc[0] if len(oc) else oc)

    def describe(self) -> str:
        """One line: the estimate, and the exact figure and its comparison when there is one."""
        if self.sparse_layer is None:
            return f"predicted {self.estimate} cycles/image"
        head = (
            f"estimate {self.estimate} cycles/image (sparse layer {self.sparse_layer!r} at its "
            "assumed activation density)"
        )
        if self.out_cycles is None:
            return f"{head}; no exact figure: {self.reason}"
        exact = "-" if self.exact is None else f"{self.exact:g}"
        tail = ""
        if self.equal is not None:
            diff = self.first_difference
            tail = (
                f", {len(self.out_cycles)} per-image output cycles == measured"
                if diff is None
                else f", image {diff[0]}: predicted cycle {diff[1]}, measured {diff[2]}"
            )
        return f"{head}; from the data {exact} cycles/image{tail}"


def predict_cycles(graph: IntegerGraph, schedule: Schedule, x: np.ndarray) -> CyclePrediction:
    """The schedule's cycles per image and, for a design with a sparse-engine layer, the exact
    per-image prediction on images ``x``."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, not {schedule!r}")
    specs = schedule.apply(graph)
    vectors = vectors_per_image(graph)
    ddr = ddr_stream_bits(get_board(schedule.board), schedule.clock_mhz)
    estimate = max(pipeline_cycles(specs, None, vectors, ddr))
    try:
        k = sparse_layer_index(specs)
    except ValueError as e:
        layers = ", ".join(s.node.name for s in specs if s.ENGINE == "sparse")
        return CyclePrediction(estimate, layers, reason=str(e))
    if k is None:
        return CyclePrediction(estimate)
    name = specs[k].node.name
    try:
        timing = sparse_pipeline_timing(graph, specs, x, vectors=vectors, ddr_bits=ddr)
    except ValueError as e:
        return CyclePrediction(estimate, name, reason=str(e))
    oc = timing.out_cycles
    return CyclePrediction(estimate, name, oc, steady_cycles_per_image(oc))


@dataclass(frozen=True)
class FastReport:
    images: int
    runs: tuple[dict, ...]
    labels: np.ndarray
    cycles_per_image: float | None
    first_output_cycle: int | None
    mismatch: FastMismatch | None = None
    waves: str | None = None
    seconds: dict = field(default_factory=dict)
    cycles: CyclePrediction | None = None
    """The prediction and its comparison with the ``steady`` run (with a schedule only)."""

    @property
    def ok(self) -> bool:
        return (
            self.mismatch is None
            and not any(r["timed_out"] for r in self.runs)
            and (self.cycles is None or self.cycles.equal is not False)
        )


def _first_mismatch(run: str, layer: str, got_l, got_s, exp_l, exp_s) -> FastMismatch | None:
    bad_s = got_s != exp_s
    bad_l = got_l != exp_l
    bad = np.flatnonzero(bad_s.any(axis=1) | bad_l)
    if not len(bad):
        return None
    k = int(bad[0])
    if bad_s[k].any():
        j = int(np.flatnonzero(bad_s[k])[0])
        return FastMismatch(run, k, f"{layer}.scores", j, int(got_s[k, j]), int(exp_s[k, j]))
    return FastMismatch(run, k, "label", 0, int(got_l[k]), int(exp_l[k]))


def verify_fast(
    graph: IntegerGraph,
    verilog: str | Path,
    fmt: StreamFormat,
    x: np.ndarray,
    *,
    patterns: list[Pattern] | None = None,
    waves_dir: str | Path | None = None,
    schedule: Schedule | None = None,
) -> FastReport:
    """Run ``x`` through the Verilog on the fast path under each pattern and compare exactly.

    With the design's ``schedule``, the report's :attr:`FastReport.cycles` also compares the
    measured output cycles of the ``steady`` pattern with the predicted ones
    (:func:`predict_cycles`); a design with a sparse-engine layer whose exact prediction differs
    fails.
    """
    t0 = time.perf_counter()
    x = graph.check_input(x)
    prediction = None if schedule is None else predict_cycles(graph, schedule, x)
    expected_scores = graph.scores(x)
    expected_labels = graph.decide(expected_scores)  # through the graph's class map, if any
    beats = input_words(fmt, x)
    patterns = patterns or default_patterns()
    model = VerilatedModel.build(verilog)
    seconds = {"build": time.perf_counter() - t0}
    runs, labels, cpi, first_out, mismatch = [], None, None, None, None
    t1 = time.perf_counter()
    for pat in patterns:
        model.reset()
        start = model.cycle
        valid, ready = pat.arrays()
        res = model.stream(beats, len(x), valid=valid, ready=ready)
        got_l, got_s = decode_results(fmt, res.outputs)
        oc = res.out_cycles - start
        steady = steady_cycles_per_image(oc)
        steady_run = valid is None and ready is None
        if prediction is not None and prediction.measured is None and steady_run:
            prediction = prediction.with_measured(oc)
        found = (
            None
            if res.timed_out
            else _first_mismatch(
                pat.name, graph.nodes[-1].name, got_l, got_s, expected_labels, expected_scores
            )
        )
        runs.append(
            {
                "name": pat.name,
                "valid_prob": pat.valid_prob,
                "ready_prob": pat.ready_prob,
                "seed": pat.seed,
                "images": len(x),
                "cycles": res.cycles,
                "cycles_per_image": steady,
                "timed_out": res.timed_out,
                "mismatched_images": int(
                    ((got_s != expected_scores).any(axis=1) | (got_l != expected_labels)).sum()
                ),
            }
        )
        if labels is None:
            labels, cpi, first_out = got_l, steady, int(oc[0]) if len(oc) else None
        if found or res.timed_out:
            mismatch = found
            if found and waves_dir is not None:
                window = (
                    int(res.out_cycles[max(0, found.image - 2)]) - 8,
                    int(res.out_cycles[found.image]) + 8,
                )
                waves = _trace_window(verilog, beats, found.image + 1, pat, window, Path(waves_dir))
                seconds["run"] = time.perf_counter() - t1
                return FastReport(
                    len(x),
                    tuple(runs),
                    labels,
                    cpi,
                    first_out,
                    mismatch,
                    str(waves),
                    seconds,
                    prediction,
                )
            break
    seconds["run"] = time.perf_counter() - t1
    model.close()
    if labels is None:  # not reached: there is always a pattern
        raise ValueError("no stimulus pattern was run")
    if prediction is not None and prediction.equal is False:
        log.warning("cycles: %s", prediction.describe())
    return FastReport(
        len(x), tuple(runs), labels, cpi, first_out, mismatch, None, seconds, prediction
    )


def _trace_window(verilog, beats, n_images, pat: Pattern, window, waves_dir: Path) -> Path:
    """Re-run the same inputs and pattern on a traced build; dump the cycles in ``window``."""
    waves_dir.mkdir(parents=True, exist_ok=True)
    path = waves_dir / f"mismatch-{pat.name}.vcd"
    with VerilatedModel.build(verilog, trace=True) as traced:
        traced.trace(path, max(0, window[0]), window[1])
        traced.reset()
        valid, ready = pat.arrays()
        traced.stream(beats, n_images, valid=valid, ready=ready)
        traced.close_trace()
    log.warning("waveform of the mismatch window written to %s", path)
    return path
