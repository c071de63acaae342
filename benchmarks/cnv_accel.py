"""Full-size BNN-PYNQ CNV accelerators: bit-exact on random images and on the published cycle counts.

For each of CNV-W1A1 and CNV-W2A2 (random weights from ``--seed``, thresholds calibrated inside the
accumulator range, BNN-PYNQ's published folding):

1. ``lowbit.flow.steps.compile_zoo`` writes the Verilog (``lowbit compile --zoo NAME`` does the same);
2. the fast path (compiled Verilator) streams ``--images`` random CIFAR-shaped images back to back,
   then again under random valid/ready throttling, and compares every score and label with the
   integer oracle (``==``); the steady-state cycles per image (interval between consecutive result
   beats after the first) is compared with the published bottleneck (32,768 / 115,200 cycles) and,
   at 299 MHz, with the measured 109.29 / 387.55 us per image;
3. CNV-W1A1 only: the cocotb testbench on Verilator with ``--cocotb-images`` images;
4. CNV-W1A1 only: ``verilator --lint-only -Wall`` under ``hw/lint_waivers.vlt``.

Writes a JSON report (``--json``). Full-size Verilator builds take minutes each; they are cached by
``lowbit.sim.fast`` under ``$LOWBIT_CACHE``.

    .venv/bin/python benchmarks/cnv_accel.py [--images 6] [--cocotb-images 2] [--variants w1a1,w2a2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lowbit.flow.steps import compile_zoo
from lowbit.hw.codec import StreamFormat
from lowbit.hw.verilog import lint
from lowbit.quant import builtin as zoo
from lowbit.ir.graph import IntegerGraph
from lowbit.sim.verify import Pattern, verify_fast

CLOCK_MHZ = 299.0


def run(name: str, out: Path, images: int, cocotb_images: int, seed: int) -> dict:
    t0 = time.perf_counter()
    rep = compile_zoo(name, out, board="ultra96-v2", seed=seed)
    compile_s = time.perf_counter() - t0
    graph = IntegerGraph.load(out / "model.npz")
    fmt = rep.stream_format
    x = np.random.default_rng(seed + 100).integers(0, 256, (images, graph.input_size))
    published, measured_us = zoo.published_bottleneck(name)
    print(f"{name}: compiled in {compile_s:.0f} s; predicted {rep.cycles_per_image} cycles/image; "
          f"fast path on {images} images ...", flush=True)
    fast = verify_fast(graph, out / rep.verilog, fmt, x,
                       patterns=[Pattern("steady"), Pattern("throttled-seed1", 0.6, 0.5, 1)])
    cpi = fast.cycles_per_image
    result = {
        "model": name, "seed": seed, "images": images, "compile_s": compile_s,
        "predicted_cycles_per_image": rep.cycles_per_image, "published_cycles": published,
        "fast": {"ok": fast.ok, "mismatch": None if fast.mismatch is None else str(fast.mismatch),
                 "runs": list(fast.runs), "seconds": fast.seconds, "cycles_per_image": cpi,
                 "first_output_cycle": fast.first_output_cycle},
        "measured_cycles_per_image": cpi,
        "relative_error_vs_published_cycles": None if cpi is None else abs(cpi - published) / published,
        "us_per_image_at_299mhz": None if cpi is None else cpi / CLOCK_MHZ,
        "published_measured_us": measured_us,
        "relative_error_vs_measured_us": None if cpi is None else abs(cpi / CLOCK_MHZ - measured_us) / measured_us,
    }
    print(f"  fast path: ok={fast.ok}, {cpi} cycles/image ({result['us_per_image_at_299mhz']} us at 299 MHz; "
          f"published {published} cycles, measured {measured_us} us), seconds {fast.seconds}", flush=True)
    if name == "cnv-w1a1":
        if cocotb_images:
            from lowbit.flow.steps import simulate_compiled
            t0 = time.perf_counter()
            sim = simulate_compiled(out, x[:cocotb_images], throttled_images=0, seeds=())
            result["cocotb"] = {"ok": sim.ok, "images": cocotb_images, "runs": list(sim.runs),
                                "seconds": time.perf_counter() - t0}
            print(f"  cocotb: ok={sim.ok} on {cocotb_images} images in {result['cocotb']['seconds']:.0f} s "
                  f"({sim.steady['cycles_per_image']} cycles/image)", flush=True)
        t0 = time.perf_counter()
        warnings = lint(out / rep.verilog)
        result["lint"] = {"warnings": warnings, "seconds": time.perf_counter() - t0}
        print(f"  lint: {len(warnings)} warnings under the waivers", flush=True)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--cocotb-images", type=int, default=2)
    ap.add_argument("--variants", default="w1a1,w2a2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="cnv_accel_out", help="directory for the compiled designs")
    ap.add_argument("--json", default="cnv_accel.json")
    args = ap.parse_args()
    results = []
    for v in args.variants.split(","):
        results.append(run(f"cnv-{v}", Path(args.out) / f"cnv-{v}", args.images, args.cocotb_images, args.seed))
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    for r in results:
        print(f"{r['model']}: {r['measured_cycles_per_image']} cycles/image measured, {r['published_cycles']} "
              f"published ({100 * (r['relative_error_vs_published_cycles'] or 0):.3f} %); "
              f"{r['us_per_image_at_299mhz']} us vs {r['published_measured_us']} us measured "
              f"({100 * (r['relative_error_vs_measured_us'] or 0):.2f} %); bit-exact: {r['fast']['ok']}")


if __name__ == "__main__":
    main()
