"""Whole-dataset verification on the fast path: every image through the RTL, compared with ``==``.

``verify_fast`` streams all images through the compiled Verilated model, once back to back
(measuring cycles per image) and then under seeded random ``valid``/``ready`` patterns, and
compares every score and label with the integer oracle (the label: the graph's class decision,
:meth:`~lowbit.ir.graph.IntegerGraph.decide`, through its class map when it has one). It stops at
the first mismatching run, names the image, the layer output and the element with both values,
and writes a VCD of the cycles around that image's output from a traced rebuild of the same
design.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..hw.codec import StreamFormat, decode_results, input_words
from ..ir.graph import IntegerGraph
from .fast import VerilatedModel

__all__ = ["Pattern", "FastMismatch", "FastReport", "verify_fast", "default_patterns"]

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

    @property
    def ok(self) -> bool:
        return self.mismatch is None and not any(r["timed_out"] for r in self.runs)


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
) -> FastReport:
    """Run ``x`` through the Verilog on the fast path under each pattern and compare exactly."""
    t0 = time.perf_counter()
    x = graph.check_input(x)
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
        warm = min(len(oc) - 1, max(1, len(oc) // 10))
        steady = float(oc[-1] - oc[warm]) / (len(oc) - 1 - warm) if len(oc) - 1 > warm else None
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
                    len(x), tuple(runs), labels, cpi, first_out, mismatch, str(waves), seconds
                )
            break
    seconds["run"] = time.perf_counter() - t1
    model.close()
    if labels is None:  # not reached: there is always a pattern
        raise ValueError("no stimulus pattern was run")
    return FastReport(len(x), tuple(runs), labels, cpi, first_out, mismatch, None, seconds)


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
