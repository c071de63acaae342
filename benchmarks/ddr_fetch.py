"""Weights streamed from DDR on the deployed shell: does the weight fetcher deliver the mapper's rate?

A digits MLP (64-128-64-10, trained here) with fc1's weights in DDR (PE 4, SIMD 32: 64 words of
128 bits per image, compute 64 cycles per image) is built for pynq-z2 (``lowbit build``: a
:class:`~lowbit.hw.axi.wfetch.WeightFetcher` on HP1, 64-bit beats, bursts of 16, ``outstanding`` bursts
in flight: 4, and 8, the build's default) and run by the generated driver on the simulated shell,
whose DDR model gives ``rate`` bits per cycle after ``latency`` cycles per burst. For each
combination: cycles per image from the shell's counter (400 images, back to back) against the
mapper's model ``max(compute, 8192 / rate)``. A fetcher keeping ``outstanding * 16 * 64`` bits in
flight should hold the rate while ``latency + 16 <= outstanding * 16 * 64 / rate`` (a burst's
round trip). Scores are checked equal to the reference on the digits test split for the first
configuration.

Writes ``benchmarks/results/ddr_fetch.{md,json}``.

    .venv/bin/python benchmarks/ddr_fetch.py
"""

from __future__ import annotations

import importlib.util
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from lowbit.deploy.build import build
from lowbit.deploy.simbackend import SimulatedOverlay
from lowbit.flow.steps import compile_model
from lowbit.mapping import Schedule
from lowbit.mapping.schedule import LayerFolding
from lowbit.quant.data import load_digits_split
from lowbit.quant.train.binary_mlp import TrainConfig, train_binary_mlp

OUT = Path(__file__).parent / "results"
RATES = (32, 56, 64)
LATENCIES = (16, 48, 96, 160)
OUTSTANDING = (4, 8)


def _driver(plan: Path):
    spec = importlib.util.spec_from_file_location("lowbit_bench_driver", plan / "driver" / "lowbit_driver.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    data = load_digits_split()
    graph = train_binary_mlp(data.x_train, data.y_train,
                             TrainConfig(hidden=(128, 64), epochs=3, seed=1)).to_integer_graph()
    schedule = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 16, 16), LayerFolding("fc1", 4, 32, weights="ddr"),
                                           LayerFolding("fc2", 2, 4)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        compile_model(graph, tmp / "c", schedule=schedule)
        specs = schedule.apply(graph)
        compute = max(s.cycles() for s in specs)
        bits = specs[1].weight_stream_bits
        for outstanding in OUTSTANDING:
            plan = tmp / f"b{outstanding}"
            build(tmp / "c", "pynq-z2", plan, fetch_outstanding=outstanding)
            drv = _driver(plan)
            in_flight = outstanding * 16 * 64
            for rate in RATES:
                for latency in LATENCIES:
                    t0 = time.perf_counter()
                    acc = drv.LowbitAccelerator(overlay=SimulatedOverlay(plan, ddr_bits_per_cycle=rate,
                                                                         ddr_latency=latency))
                    exact = None
                    if not rows:
                        _, scores = acc.run(data.x_test)
                        exact = bool((scores == graph.scores(data.x_test)).all())
                    measured = acc.throughput_test(400)["cycles_per_image"]
                    predicted = max(compute, math.ceil(bits / rate))
                    rows.append({"outstanding": outstanding, "rate": rate, "latency": latency,
                                 "predicted": predicted, "measured": measured, "ratio": measured / predicted,
                                 "covered": latency + 16 <= in_flight / rate, "bit_exact_test_split": exact,
                                 "seconds": time.perf_counter() - t0})
                    print(f"outstanding {outstanding}  rate {rate:3d} b/c  latency {latency:3d}  predicted "
                          f"{predicted:4d}  measured {measured:8.2f}  ratio {measured / predicted:.3f}", flush=True)
    lines = ["# Weight fetcher on the simulated shell: measured against the mapper's DDR rate", "",
             "digits MLP 64-128-64-10, fc1 from DDR (64 words of 128 bits per image, compute 64 cycles); "
             "pynq-z2 plan, one fetcher on HP1 (64-bit beats, bursts of 16, 4 or 8 in flight). "
             "Cycles per image from the shell's counter over 400 back-to-back images (pipeline fill "
             "included once).", "",
             f"Scores on the 450 digits test images equal the reference: {rows[0]['bit_exact_test_split']}.", "",
             "| bursts in flight | DDR rate (bits/cycle) | latency per burst (cycles) | "
             "latency + 16 <= bits in flight / rate | predicted | measured | measured / predicted |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['outstanding']} | {r['rate']} | {r['latency']} | {'yes' if r['covered'] else 'no'} | "
                     f"{r['predicted']} | {r['measured']:.2f} | {r['ratio']:.3f} |")
    text = "\n".join(lines) + "\n"
    OUT.mkdir(exist_ok=True)
    (OUT / "ddr_fetch.md").write_text(text)
    (OUT / "ddr_fetch.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
