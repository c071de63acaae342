"""Simulation speed of the two RTL paths on the same design, as a ratio measured in one run.

Baseline: the Amaranth Python simulator (``lowbit.sim.amaranth_sim.run_stream``).
Compared: cocotb + Verilator (``lowbit.sim.accel_sim.simulate``), excluding and including the
Verilator build. Both simulate the same stitched accelerator (a random 64-128-128-10 binary MLP
folded to 64 cycles per image) on the same images; both are checked against the oracle.

    .venv/bin/python benchmarks/bench_sim.py [--images N]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from lowbit.hw.top import Accelerator, stream_format
from lowbit.hw.codec import decode_result, input_beats
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold
from lowbit.sim.accel_sim import RunSpec, simulate
from lowbit.sim.amaranth_sim import run_stream


def graph(rng) -> IntegerGraph:
    sizes, nodes, dtype = (64, 128, 128, 10), [], DataType.uint(5)
    for k, (mw, mh) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(0, 2, (mh, mw))
        if k == len(sizes) - 2:
            nodes.append(MatMulThreshold(f"fc{k}", dtype, w, None))
        else:
            lo, hi = MatMulThreshold("p", dtype, w, None).acc_range
            nodes.append(MatMulThreshold(f"fc{k}", dtype, w, rng.integers(lo, hi + 2, (mh, 1))))
            dtype = BIPOLAR
    return IntegerGraph(DataType.uint(5), tuple(nodes))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    g = graph(rng)
    specs = [MVTUSpec(g.nodes[0], pe=8, simd=16), MVTUSpec(g.nodes[1], pe=8, simd=32),
             MVTUSpec(g.nodes[2], pe=2, simd=16)]
    x = rng.integers(0, 17, (args.images, 64))
    expected = g.scores(x)

    acc = Accelerator(specs)
    fmt = stream_format(acc)
    beats = [b for img in input_beats(fmt, x) for b in img]
    t0 = time.perf_counter()
    res = run_stream(acc, beats, len(x))
    t_amaranth = time.perf_counter() - t0
    got = np.array([decode_result(fmt, w)[1] for w in res.outputs])
    assert np.array_equal(got, expected), "Amaranth simulation differs from the oracle"
    cycles = res.out_cycles[-1]

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = simulate(g, specs, x, tmp, runs=[RunSpec("steady")])
        t_total = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = simulate(g, specs, x, tmp, runs=[RunSpec("steady")])  # build reused: run only
        t_run = time.perf_counter() - t0
    assert rep.ok, "Verilator simulation differs from the oracle"

    print(f"design: 64-128-128-10, {max(s.cycles() for s in specs)} cycles/image, {len(x)} images, "
          f"{cycles} cycles")
    print(f"{'path':38s} {'seconds':>8s} {'cycles/s':>10s} {'speed-up':>9s}")
    for name, t in [("Amaranth simulator (baseline)", t_amaranth),
                    ("cocotb + Verilator, build reused", t_run),
                    ("cocotb + Verilator, incl. build", t_total)]:
        print(f"{name:38s} {t:8.2f} {cycles / t:10.0f} {t_amaranth / t:8.1f}x")


if __name__ == "__main__":
    main()
