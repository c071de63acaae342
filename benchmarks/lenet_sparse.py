"""LeNet-300-100 on mnist5k, Deep-Compressed and run on the sparse engine's RTL.

1. A bias-free float MLP 784-300-100-10 is trained in NumPy on the 4,000 training images (pixels
   scaled to [0, 1]): the dense float twin.
2. Deep Compression (:func:`lowbit.quant.deep_compression.compress_mlp`): iterative magnitude pruning to
   8 % / 9 % / 26 % per layer (about 8 % overall, Han et al.'s LeNet-300-100 densities) with
   retraining, 16-entry k-means sharing (index 0 = zero, linear init) and centroid fine-tuning.
3. Fixed point (:func:`lowbit.quant.deep_compression.integer_layers`): UINT8 pixels in, 8-bit codebooks,
   16-bit activations, per-layer requantizing shifts; ``sw_reference`` gives the integer accuracy.
4. Each layer runs under cocotb + Verilator (:func:`lowbit.sim.sparse_sim.simulate`, one build per
   layer, weights loaded at run time) on the test split's inputs to that layer, compared with
   ``sw_reference`` using ``==``; measured cycles must equal the cycle model.

Writes ``benchmarks/results/sparse_lenet.md`` and ``sparse_lenet.json``.

    .venv/bin/python benchmarks/lenet_sparse.py [--images 1000] [--pes 16] [--depth 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from lowbit._io import atomic_write
from lowbit.hw.sparse.engine_spec import SparseEngineSpec
from lowbit.quant.deep_compression import (SharedLayer, accuracy, compress_mlp, compression_ratio,
                                           integer_forward, integer_layers, mlp_forward)
from lowbit.quant.data import load_mnist5k_split
from lowbit.sim.sparse_sim import SparseLayer, SparseRun, simulate

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(os.environ.get("LOWBIT_CACHE", Path.home() / ".cache" / "lowbit")) / "bench-models"


def _compressed(d, seed: int):
    """The compressed model, cached (training takes minutes)."""
    path = CACHE / f"lenet300100-sparse-seed{seed}.npz"
    if path.is_file():
        z = np.load(path)
        dense = [z[f"dense{k}"] for k in range(3)]
        shared = [SharedLayer(z[f"idx{k}"], z[f"cent{k}"]) for k in range(3)]
        return dense, shared, False
    c = compress_mlp(d.x_train / 255.0, d.y_train, hidden=(300, 100), densities=(0.08, 0.09, 0.26), seed=seed)
    arrays = {f"dense{k}": w for k, w in enumerate(c.dense)}
    arrays.update({f"idx{k}": s.indices for k, s in enumerate(c.shared)})
    arrays.update({f"cent{k}": s.centroids for k, s in enumerate(c.shared)})
    CACHE.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return c.dense, c.shared, True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000, help="test images run on the RTL (default: all 1000)")
    ap.add_argument("--pes", type=int, default=16)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    d = load_mnist5k_split()
    t0 = time.perf_counter()
    dense, shared, trained = _compressed(d, args.seed)
    t_train = time.perf_counter() - t0
    xte = d.x_test / 255.0
    acc_dense = accuracy(mlp_forward(dense, xte), d.y_test)
    acc_shared = accuracy(mlp_forward([s.weights for s in shared], xte), d.y_test)
    specs = [SparseEngineSpec.for_layer(layer, depth=args.depth)
             for layer in integer_layers(shared, d.x_train, pes=args.pes)]
    outs = integer_forward(specs, d.x_test)
    acc_int = accuracy(outs[-1], d.y_test)
    density = sum(np.count_nonzero(s.indices) for s in shared) / sum(s.indices.size for s in shared)
    images = [s.image for s in specs]
    ratio = compression_ratio(images)
    n = min(args.images, len(d.x_test))
    inputs = [d.x_test[:n]] + [o[:n] for o in outs[:-1]]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lowbit-lenet-sparse-"))
    layers_report = []
    t0 = time.perf_counter()
    for k, (spec, x) in enumerate(zip(specs, inputs)):
        rep = simulate(spec, [SparseLayer(spec.image, x)], workdir / f"fc{k}", runs=[SparseRun("steady", 0)],
                       waves_on_failure=False)
        run = rep.runs[0]
        model = [spec.timing(xi).cycles for xi in x]
        layers_report.append({
            "layer": f"fc{k}", "shape": [spec.rows, spec.cols], "density": float(np.count_nonzero(shared[k].indices)
                                                                              / shared[k].indices.size),
            "shift": spec.shift, "relu": spec.relu, "max_entries_per_pe": spec.image.max_entries,
            "vectors": n, "checked": run["checked"], "mismatched_vectors": run["mismatched_vectors"],
            "outputs_equal_reference": run["outputs"] == outs[k][:n].tolist(),
            "cycles_equal_model": run["cycles"] == model, "mean_cycles": float(np.mean(run["cycles"])),
            "act_density": float(np.mean(x != 0)),
        })
    t_rtl = time.perf_counter() - t0
    rtl_logits = np.array(outs[-1][:n])
    report = {
        "pes": args.pes, "depth": args.depth, "train_seconds": t_train, "trained_now": trained,
        "accuracy": {"dense_float": acc_dense, "compressed_float": acc_shared, "integer_reference": acc_int,
                     "integer_reference_on_rtl_images": accuracy(rtl_logits, d.y_test[:n])},
        "loss_points": 100 * (acc_dense - acc_int), "overall_density": density, "compression_ratio": ratio,
        "encoded_bits": sum(im.encoded_bits() for im in images), "dense_float_bits": 32 * sum(s.indices.size for s in shared),
        "rtl_images": n, "rtl_seconds": t_rtl, "layers": layers_report,
        "rtl_mismatched_vectors": sum(r["mismatched_vectors"] for r in layers_report),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write(RESULTS / "sparse_lenet.json", json.dumps(report, indent=1))
    lines = [
        "# LeNet-300-100 on mnist5k, compressed for the sparse engine",
        "",
        f"Test split: 1000 images; RTL (cocotb + Verilator, {args.pes} PEs, queue depth {args.depth}) on {n}.",
        "",
        "| model | test accuracy |",
        "|---|---|",
        f"| dense float (bias-free 784-300-100-10) | {acc_dense:.3f} |",
        f"| pruned + 4-bit shared, float | {acc_shared:.3f} |",
        f"| fixed point (sw_reference) | {acc_int:.3f} |",
        "",
        f"Loss vs the dense float twin: {100 * (acc_dense - acc_int):.2f} points. Overall weight density "
        f"{100 * density:.2f} %. Compression ratio (dense float32 bits / encoded bits incl. 16-bit column "
        f"pointers per PE and 32-bit codebooks): {ratio:.1f}x.",
        "",
        "| layer | shape | density | shift | act. density in | mean cycles | RTL mismatches | cycles == model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in layers_report:
        lines.append(f"| {r['layer']} | {r['shape'][0]}x{r['shape'][1]} | {100 * r['density']:.1f} % | {r['shift']} | "
                     f"{100 * r['act_density']:.1f} % | {r['mean_cycles']:.1f} | {r['mismatched_vectors']} / {r['vectors']} "
                     f"| {r['cycles_equal_model']} |")
    atomic_write(RESULTS / "sparse_lenet.md", "\n".join(lines) + "\n")
    logging.info("dense %.3f, compressed %.3f, integer %.3f, ratio %.1fx, RTL mismatches %d",
                 acc_dense, acc_shared, acc_int, ratio, report["rtl_mismatched_vectors"])
    return 0 if report["rtl_mismatched_vectors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
