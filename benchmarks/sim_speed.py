"""Simulation speed: cocotb + Verilator, the fast path, and a hand-written C++ loop, in one run.

For each design (the digits MLP and an LFC-style mnist5k MLP, both trained here with lowbit's
NumPy trainer and compiled with ``lowbit.flow.steps.compile_model``; and the full-size BNN-PYNQ
CNV-W1A1 built in, with random weights and its published folding, on random CIFAR-shaped images)
the same Verilog is simulated by

(a) cocotb + Verilator (``lowbit.sim.accel_sim.simulate``, steady run on a subset of images),
(b) the fast path (``lowbit.sim.fast.VerilatedModel.stream`` on the whole test split),
(c) a hand-written C++ ``main`` around the same Verilated model, looping over the same beats.

Only simulation time is compared (builds are reported apart). All three are checked: (a) and (b)
against the integer oracle with ``==``, (c) by comparing its output beats with (b)'s.

    .venv/bin/python benchmarks/sim_speed.py [--cocotb-images 60] [--lfc-epochs 4]
        [--designs digits-mlp,lfc-mnist5k,cnv-w1a1] [--cnv-images 8] [--cnv-cocotb-images 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from lowbit.flow.steps import compile_model
from lowbit.hw.codec import StreamFormat, decode_results, input_words
from lowbit.mapping import search_folding
from lowbit.quant.data import load_digits_split, load_mnist5k_split
from lowbit.ir.graph import IntegerGraph
from lowbit.quant.train.binary_mlp import TrainConfig, train_binary_mlp
from lowbit.sim._harness import cxx_name, parse_ports
from lowbit.sim.accel_sim import RunSpec, simulate
from lowbit.sim.fast import VerilatedModel
from lowbit.tools.simulators import ensure_verilator

CACHE = Path(os.environ.get("LOWBIT_CACHE", Path.home() / ".cache" / "lowbit")) / "bench-models"

MAIN_CPP = r"""
#include "Vtop.h"
#include "verilated.h"
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <vector>
int main(int argc, char** argv) {
    FILE* f = fopen(argv[1], "rb");
    uint64_t n_in, n_out; fread(&n_in, 8, 1, f); fread(&n_out, 8, 1, f);
    std::vector<uint32_t> in(n_in * IW); fread(in.data(), 4, in.size(), f); fclose(f);
    std::vector<uint32_t> out(n_out * OW);
    VerilatedContext ctx; Vtop top{&ctx};
    top.clk = 0; top.rst = 1; top.eval();
    for (int k = 0; k < 3; ++k) { top.clk = 1; top.eval(); top.clk = 0; top.eval(); }
    top.rst = 0;
    auto t0 = std::chrono::steady_clock::now();
    uint64_t i = 0, o = 0, c = 0;
    while (o < n_out) {
        bool v = i < n_in;
        top.IVALID = v;
        if (v) { SET_PAYLOAD }
        top.OREADY = 1;
        top.eval();
        bool fire = v && top.IREADY;
        if (top.OVALID) { GET_PAYLOAD ++o; }
        if (fire) ++i;
        top.clk = 1; top.eval(); top.clk = 0;
        ++c;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("{\"cycles\": %llu, \"seconds\": %.9f}\n", (unsigned long long)c, s);
    FILE* g = fopen(argv[2], "wb"); fwrite(out.data(), 4, out.size(), g); fclose(g);
    return 0;
}
"""


def _cxx_loop(verilog: Path, beats: np.ndarray, n_out: int, work: Path) -> tuple[dict, np.ndarray, float]:
    ports = {p.name: p for p in parse_ports(verilog.read_text(), "lowbit_top")}
    ip, op = ports["i__payload"], ports["o__payload"]

    def assign(p, lhs_fmt, src):
        if p.width <= 32:
            return lhs_fmt.format(f"{src}[0]")
        if p.width <= 64:
            return lhs_fmt.format(f"((uint64_t){src}[0] | ((uint64_t){src}[1] << 32))")
        return None

    n_i, n_o = cxx_name(ip.name), cxx_name(op.name)
    if ip.width > 64:
        set_p = f"for (int k = 0; k < IW; ++k) top.{n_i}[k] = in[i * IW + k];"
    else:
        set_p = assign(ip, f"top.{n_i} = {{}};", "(&in[i * IW])")
    if op.width > 64:
        get_p = f"for (int k = 0; k < OW; ++k) out[o * OW + k] = top.{n_o}[k];"
    elif op.width > 32:
        get_p = f"out[o * OW] = (uint32_t)top.{n_o}; out[o * OW + 1] = (uint32_t)(top.{n_o} >> 32);"
    else:
        get_p = f"out[o * OW] = top.{n_o};"
    src = (MAIN_CPP.replace("SET_PAYLOAD", set_p).replace("GET_PAYLOAD", get_p)
           .replace("IVALID", cxx_name("i__valid")).replace("IREADY", cxx_name("i__ready"))
           .replace("OVALID", cxx_name("o__valid")).replace("OREADY", cxx_name("o__ready")))
    src = f"#define IW {ip.words}\n#define OW {op.words}\n" + src
    (work / "main.cpp").write_text(src)
    (work / "top.v").write_text(verilog.read_text())
    env = {**os.environ, "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}
    t0 = time.perf_counter()
    subprocess.run([str(ensure_verilator()), "--cc", "--exe", "--build", "-j", "2", "-O3", "-Wno-fatal",
                    "--top-module", "lowbit_top", "--prefix", "Vtop", "-Mdir", "obj", "-CFLAGS", "-O2",
                    "-o", "bench", "top.v", "main.cpp"], cwd=work, check=True, capture_output=True, env=env)
    build = time.perf_counter() - t0
    with open(work / "in.bin", "wb") as f:
        f.write(np.array([len(beats), n_out], dtype=np.uint64).tobytes())
        f.write(np.ascontiguousarray(beats, dtype="<u4").tobytes())
    res = subprocess.run([str(work / "obj" / "bench"), str(work / "in.bin"), str(work / "out.bin")],
                         check=True, capture_output=True, text=True)
    out = np.fromfile(work / "out.bin", dtype="<u4").reshape(n_out, op.words)
    return json.loads(res.stdout), out, build


def _model(name: str, data, hidden, epochs) -> IntegerGraph:
    path = CACHE / f"{name}-{'x'.join(map(str, hidden))}-e{epochs}.npz"
    if path.is_file():
        return IntegerGraph.load(path)
    t0 = time.perf_counter()
    model = train_binary_mlp(data.x_train, data.y_train, TrainConfig(hidden=hidden, epochs=epochs),
                             input_dtype=data.input_dtype)
    graph = model.to_integer_graph()
    print(f"  trained {name} in {time.perf_counter() - t0:.0f} s "
          f"(test accuracy {np.mean(graph.predict(data.x_test) == data.y_test):.4f})")
    graph.save(path)
    return graph


def bench(name, graph, data, max_cycles, cocotb_images, work: Path, schedule=None) -> dict:
    if schedule is None:
        schedule = search_folding(graph, "pynq-z2", max_cycles=max_cycles)
    out = work / name
    rep = compile_model(graph, out, schedule=schedule)
    fmt = rep.stream_format
    verilog = out / rep.verilog
    x = data.x_test
    expected = graph.scores(x)
    beats = input_words(fmt, x)

    t0 = time.perf_counter()
    model = VerilatedModel.build(verilog)
    fast_build = time.perf_counter() - t0
    model.reset()
    t0 = time.perf_counter()
    fast = model.stream(beats, len(x))
    fast_s = time.perf_counter() - t0
    labels, scores = decode_results(fmt, fast.outputs)
    assert not fast.timed_out and np.array_equal(scores, expected), f"{name}: fast path differs from the oracle"
    accuracy = None if data.y_test is None else float(np.mean(labels == data.y_test))

    cxx, cxx_out, cxx_build = _cxx_loop(verilog, beats, len(x), Path(tempfile.mkdtemp(dir=work)))
    assert np.array_equal(cxx_out, fast.outputs), f"{name}: C++ loop output differs from the fast path"

    k = min(cocotb_images, len(x))
    t0 = time.perf_counter()
    simulate(graph, schedule.apply(graph), x[:k], work / f"{name}-cocotb", runs=[RunSpec("steady", images=k)])
    cocotb_total = time.perf_counter() - t0
    t0 = time.perf_counter()  # second call reuses the build: simulation (and process start) only
    sim = simulate(graph, schedule.apply(graph), x[:k], work / f"{name}-cocotb", runs=[RunSpec("steady", images=k)])
    cocotb_s = time.perf_counter() - t0
    assert sim.ok, f"{name}: cocotb run differs from the oracle"
    cocotb_cycles = sim.steady["cycles_total"]

    return {
        "design": name, "cycles_per_image": schedule.report(graph)["cycles_per_image"], "images": len(x),
        "accuracy_rtl": accuracy,
        "cocotb": {"images": k, "cycles": cocotb_cycles, "seconds": cocotb_s,
                   "cycles_per_s": cocotb_cycles / cocotb_s, "images_per_s": k / cocotb_s,
                   "build_s": cocotb_total - cocotb_s},
        "fast": {"cycles": fast.cycles, "seconds": fast_s, "cycles_per_s": fast.cycles / fast_s,
                 "images_per_s": len(x) / fast_s, "build_s": fast_build},
        "cxx": {"cycles": cxx["cycles"], "seconds": cxx["seconds"], "cycles_per_s": cxx["cycles"] / cxx["seconds"],
                "images_per_s": len(x) / cxx["seconds"], "build_s": cxx_build},
    }


class _RandomImages:
    """Random test images (no labels) for a built-in model."""

    def __init__(self, graph: IntegerGraph, n: int, seed: int = 0):
        hi = 2 if graph.input_dtype.name == "BIPOLAR" else graph.input_dtype.max + 1
        self.x_test = np.random.default_rng(seed).integers(0, hi, (n, graph.input_size))
        self.y_test = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cocotb-images", type=int, default=60)
    ap.add_argument("--lfc-epochs", type=int, default=4)
    ap.add_argument("--designs", default="digits-mlp,lfc-mnist5k,cnv-w1a1")
    ap.add_argument("--cnv-images", type=int, default=8, help="random images through CNV-W1A1")
    ap.add_argument("--cnv-cocotb-images", type=int, default=2)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = args.designs.split(",")
    designs = []
    if "digits-mlp" in wanted:
        digits = load_digits_split()
        designs.append(("digits-mlp", _model("digits", digits, (256, 256), 40), digits, 256, None, args.cocotb_images))
    if "lfc-mnist5k" in wanted:
        mnist = load_mnist5k_split()
        designs.append(("lfc-mnist5k", _model("mnist5k", mnist, (1024, 1024, 1024), args.lfc_epochs), mnist, 4096,
                        None, args.cocotb_images))
    if "cnv-w1a1" in wanted:
        from lowbit.flow.steps import zoo_schedule
        from lowbit.quant import builtin as zoo
        model = zoo.build("cnv-w1a1")
        designs.append(("cnv-w1a1", model.graph, _RandomImages(model.graph, args.cnv_images), None,
                        zoo_schedule(model.name, model.graph, model.matmul_folding, "pynq-z2"),
                        args.cnv_cocotb_images))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, graph, data, max_cycles, schedule, k in designs:
            print(f"{name}: building and simulating ...", flush=True)
            # CNV's full-size Verilator builds take minutes: keep its directory, so that the cocotb
            # build is reused by the next run (accel_sim reuses a build made from the same Verilog)
            work = CACHE / "sim-speed-cnv" if name.startswith("cnv") else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            results.append(bench(name, graph, data, max_cycles, k, work, schedule=schedule))
    print()
    print(f"{'design':12s} {'path':8s} {'images':>7s} {'cycles/s':>12s} {'images/s':>11s} {'sim s':>8s} "
          f"{'build s':>8s} {'vs cocotb':>10s} {'vs C++':>7s}")
    for r in results:
        for path in ("cocotb", "fast", "cxx"):
            p = r[path]
            print(f"{r['design']:12s} {path:8s} {p.get('images', r['images']):7d} {p['cycles_per_s']:12,.0f} "
                  f"{p['images_per_s']:11,.1f} {p['seconds']:8.3f} {p['build_s']:8.1f} "
                  f"{p['cycles_per_s'] / r['cocotb']['cycles_per_s']:9.1f}x "
                  f"{p['cycles_per_s'] / r['cxx']['cycles_per_s']:6.2f}")
        accuracy = "random images" if r["accuracy_rtl"] is None else \
            f"RTL accuracy on the whole test split {r['accuracy_rtl']:.4f}"
        print(f"{'':12s} ({r['cycles_per_image']} cycles/image, {accuracy})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
