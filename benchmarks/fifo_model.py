"""FIFO model benchmark: BNN-PYNQ LFC-W1A1's period under the stream-coupled model, by FIFO depths.

Runs :func:`lowbit.mapping.dataflow_model.simulate_pipeline` on the processes and streams of
BNN-PYNQ's ``lfcW1A1/hw/top.cpp`` (:func:`~lowbit.mapping.dataflow_model.bnn_pynq_lfc_w1a1`) with
the published depths of ``inter0..2`` (``512 / PE`` = 16, 8, 16), the depths ``MH / PE`` the
source's comment asks for, all-2 depths, and the smallest depths that reach the 512-cycle
bottleneck (:func:`~lowbit.mapping.dataflow_model.min_fifo_depths`); as cross-checks, the same
layers with the 32->8 converter merged into L3 (``in_ratio``) and with lowbit's double-buffered
MVTU. Measured: 2.80 us/image at 299 MHz (837 cycles). Prints a table and writes
``benchmarks/results/fifo_model.md``.

    .venv/bin/python benchmarks/fifo_model.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from lowbit._io import atomic_write
from lowbit.mapping.dataflow_model import Stage, bnn_pynq_lfc_w1a1, min_fifo_depths, simulate_pipeline

RESULTS = Path(__file__).resolve().parent / "results"
CLOCK_MHZ = 299.0
MEASURED_US = 2.80
WIDTHS = (64, 32, 64, 32, 8, 16, 64)
"""Bits per word of memInStrm, inter0..2, the converter streams before and after L3, memOutStrm."""


def _timed(fn, repeat: int):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def rows(repeat: int) -> tuple[list[dict], dict]:
    stages, published = bnn_pynq_lfc_w1a1()
    published = [f.depth for f in published]
    found, t_min = _timed(lambda: min_fifo_depths(stages), max(1, repeat // 5))
    configs = [
        ("published (top.cpp: 512/PE)", stages, published),
        ("MH/PE", stages, [f.depth for f in bnn_pynq_lfc_w1a1((32, 16, 32))[1]]),
        ("all 2", stages, [2] * len(published)),
        ("min_fifo_depths", stages, list(found)),
    ]
    merged = [Stage("L0", 13, 32), Stage("L1", 32, 16), Stage("L2", 16, 32), Stage("L3", 128, 4, in_ratio=4)]
    configs.append(("published, converter merged into L3 (in_ratio=4)", merged, [1024, 16, 8, 16, 1024]))
    double = [Stage(s.name, s.sf, s.nf, "double", s.in_ratio, s.vectors) for s in merged]
    configs.append(("lowbit double-buffered MVTU, all 2", double, [2] * 5))
    table = []
    for label, st, depths in configs:
        timing, seconds = _timed(lambda: simulate_pipeline(st, depths, images=30), repeat)
        bits = sum(d * w for d, w in zip(depths, WIDTHS)) if len(depths) == len(WIDTHS) else None
        table.append({"config": label, "depths": depths, "bits": bits, "period": timing.period,
                      "bound": timing.bound, "us": timing.period / CLOCK_MHZ,
                      "error": (timing.period / CLOCK_MHZ - MEASURED_US) / MEASURED_US,
                      "bottleneck": timing.bottleneck, "stalls": timing.stalls, "ms": 1e3 * seconds,
                      "images": timing.simulated_images})
    return table, {"min_fifo_depths_ms": 1e3 * t_min, "min_depths": found, "sensitivity": sensitivity()}


def sensitivity() -> list[dict]:
    """The published design under what the model cannot know: the MVAU loops' HLS pipeline depth,
    and FIFOs holding one word less or more than their declared depth."""
    stages, fifos = bnn_pynq_lfc_w1a1()
    out = []
    for lat in (1, 4, 8, 12, 13, 14, 15, 16, 17, 20):
        deep = [Stage(s.name, s.sf, s.nf, s.buffering, s.in_ratio, s.vectors, lat if s.name.startswith("L") else 1)
                for s in stages]
        out.append({"what": f"MVAU pipeline depth {lat}", "period": simulate_pipeline(deep, fifos).period})
    for delta in (-1, 1):
        st, f = bnn_pynq_lfc_w1a1(tuple(512 // pe + delta for pe in (32, 64, 32)))
        out.append({"what": f"inter0..2 holding {delta:+d} word", "period": simulate_pipeline(st, f).period})
    for r in out:
        r["error"] = (r["period"] / CLOCK_MHZ - MEASURED_US) / MEASURED_US
    return out


def markdown(table: list[dict], extra: dict) -> str:
    lines = ["# Stream-coupled model of BNN-PYNQ LFC-W1A1 (FIFO depths)", "",
             f"Measured: {MEASURED_US:.2f} us/image at {CLOCK_MHZ:.0f} MHz ({MEASURED_US * CLOCK_MHZ:.0f} cycles); "
             "bottleneck-only model: 512 cycles = 1.71 us (-39 %).", "",
             "Depths are memInStrm, inter0, inter1, inter2, L3's 32->8 converter stream, L3's 16->64 converter "
             "stream, memOutStrm (words). FIFO bits exclude the two 1024-deep DMA FIFOs.", "",
             "| configuration | depths | inter-layer FIFO bits | cycles/image | us at 299 MHz | vs measured | "
             "L0 / L1 stalls per image (starved, blocked) | model run |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table:
        bits = "" if r["bits"] is None else str(r["bits"] - r["depths"][0] * 64 - r["depths"][-1] * 64)
        stalls = f"{r['stalls']['L0']} / {r['stalls']['L1']}"
        lines.append(f"| {r['config']} | {', '.join(map(str, r['depths']))} | {bits} | {r['period']} | "
                     f"{r['us']:.2f} | {100 * r['error']:+.1f} % | {stalls} | {r['ms']:.1f} ms |")
    lines += ["", f"`min_fifo_depths` (LFC, 7 FIFOs, doubling then bisecting each): "
              f"{extra['min_fifo_depths_ms']:.0f} ms; result {extra['min_depths']}.",
              "Each simulation stops when the state at an image's completion repeats (exact period); "
              f"the published configuration needed {table[0]['images']} simulated images.", "",
              "## Sensitivity of the published design to what the model does not know", "",
              "| variant | cycles/image | vs measured |", "|---|---|---|"]
    lines += [f"| {r['what']} | {r['period']} | {100 * r['error']:+.1f} % |" for r in extra["sensitivity"]]
    lines += ["", "The period does not move with the MVAU loops' pipeline depth up to 13 stages; from 15 stages "
              "on the model is within 10 % of the measurement. The depth Vivado HLS gave these loops at 300 MHz "
              "is in its reports, which are not published, so lowbit does not pick one: the anchor stays at "
              "depth 1 (-13.6 %). The period moves by about 4 % per word of FIFO capacity. The measurement "
              "(notebooks/LFC-QNN_MNIST.ipynb, 2019-02-21) ran the Ultra96 bitstream of BNN-PYNQ commit "
              "1e5552f (2018-09-28), whose top.cpp and HLS library have the processes, depths and MVAU loop "
              "modelled here.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per timing (median)")
    args = ap.parse_args(argv)
    table, extra = rows(args.repeat)
    text = markdown(table, extra)
    atomic_write(RESULTS / "fifo_model.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
