"""Accuracy and weight memory across the quantization zoo: the shape of Roth et al. Fig. 3/4, small.

For an MLP (``mlp:256,256`` on mnist5k, the fixed 4,000 / 1,000 split) and a small CNN
(``cnv-small`` on the digits), train float / 8 / 4 / 2-bit / ternary / log2 / 1-bit with weights
only, activations only and both quantized (first and last layers' weights at 8 bits, as the papers
recommend), plus gradual magnitude pruning to 90 % of the MLP's hidden layers. Every exportable
model is exported to the integer graph and its predictions are compared with the training model's
on every test sample.

Writes ``benchmarks/results/accuracy_sweep.{md,json,png}``.

    .venv/bin/python benchmarks/accuracy_sweep.py [--epochs 15] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from lowbit._io import atomic_write
from lowbit.quant.data import load_digits_split, load_mnist5k_split
from lowbit.quant.export import to_integer_graph
from lowbit.quant.train.loop import ZooConfig, op_counts, train_zoo, weight_memory_bits

RESULTS = Path(__file__).parent / "results"

WEIGHTS = {"float": "float", "8": "int:8", "4": "int:4", "2": "int:2", "ternary": "ternary", "log2": "log2:4",
           "1": "binary"}
ACTS = {"float": "float", "8": "int:8", "4": "int:4", "2": "int:2", "ternary": "int:2", "log2": "int:4",
        "1": "binary"}


def configs() -> list[tuple[str, str, str, str]]:
    """``(mode, precision, weights, acts)`` rows."""
    rows = [("float", "float", "float", "float")]
    for p in ("8", "4", "2", "ternary", "log2", "1"):
        rows.append(("weights", p, WEIGHTS[p], "float"))
    for p in ("8", "4", "2", "1"):
        rows.append(("acts", p, "float", ACTS[p]))
    for p in ("8", "4", "2", "ternary", "log2", "1"):
        rows.append(("both", p, WEIGHTS[p], ACTS[p]))
    return rows


def run_one(data, arch: str, weights: str, acts: str, epochs: int, **kw):
    """Train one configuration; returns ``(row, net)``."""
    t0 = time.perf_counter()
    net = train_zoo(data, ZooConfig(arch=arch, weights=weights, acts=acts, epochs=epochs, **kw))
    seconds = time.perf_counter() - t0
    pred = net.predict(data.x_test)
    row = {"arch": arch, "weights": weights, "acts": acts, "epochs": epochs,
           "accuracy": float(np.mean(pred == data.y_test)), "weight_memory_bits": weight_memory_bits(net),
           "ops": op_counts(net), "train_seconds": round(seconds, 1), **{k: v for k, v in kw.items()}}
    row["float_pass_agreement"] = float(np.mean(np.argmax(net.forward(data.x_test), axis=1) == pred))
    if net.exportable:
        graph = to_integer_graph(net)
        gpred = graph.predict(data.x_test)
        row["graph_agreement"] = float(np.mean(gpred == pred))
        row["graph_scores_equal"] = bool(np.array_equal(graph.scores(data.x_test), net.exact_forward(data.x_test)))
        row["graph_weight_zeros"] = int(sum(int(np.sum(n.weight_values == 0)) for n in graph.matmuls))
        row["graph_weights"] = [n.weight_dtype.name for n in graph.matmuls]
    return row, net


def epoch_time(data, epochs: int = 1) -> dict:
    """Seconds per epoch of cnv-small (W2A2) on the mnist5k training set, with a matmul baseline."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        rng = np.random.default_rng(0)
        a, b = rng.random((4096, 144)), rng.random((144, 32))
        t0 = time.perf_counter()
        for _ in range(20):
            a @ b
        gemm = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    train_zoo(data, ZooConfig(arch="cnv-small", weights="int:2", acts="int:2", epochs=epochs, recalibrate=0))
    sec = (time.perf_counter() - t0) / epochs
    return {"images": int(len(data.x_train)), "seconds_per_epoch": round(sec, 2),
            "baseline_gemm_4096x144x32_seconds": gemm, "epoch_over_gemm": round(sec / gemm, 1)}


ALL_LAYERS = (("binary", "binary"), ("int:2", "int:2"), ("ternary", "int:2"), ("log2:4", "int:4"))


def all_layers(data, epochs: int) -> list[dict]:
    """The MLP with every layer's weights in the scheme (no 8-bit first and last layers)."""
    rows = []
    for w, a in ALL_LAYERS:
        row, _ = run_one(data, "mlp:256,256", w, a, epochs, first_bits=None, last_bits=None)
        rows.append(row)
        print(f"all layers W={w} A={a}: acc {row['accuracy']:.4f}", file=sys.stderr, flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = ["# Accuracy sweep (Roth et al. Fig. 3/4, small scale)", "",
             f"Epochs: {result['epochs']}; seed 0; first and last layers' weights at 8 bits when weights are "
             "quantized. Accuracy on the test split; weight memory in kbit. `graph` is the share of test "
             "samples on which the exported integer graph predicts the training model's class.", ""]
    for model in result["models"]:
        lines += [f"## {model['title']}", "",
                  "| mode | precision | weights | acts | accuracy | delta vs float | weight kbit | graph |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        base = model["rows"][0]["accuracy"]
        for r in model["rows"]:
            g = f"{100 * r['graph_agreement']:.1f} %" if "graph_agreement" in r else "n/a (float)"
            lines.append(f"| {r['mode']} | {r['precision']} | {r['weights']} | {r['acts']} | "
                         f"{100 * r['accuracy']:.1f} | {100 * (r['accuracy'] - base):+.1f} | "
                         f"{r['weight_memory_bits'] / 1000:.1f} | {g} |")
        lines.append("")
    if "all_layers" in result:
        base = result["models"][0]["rows"][0]["accuracy"]
        lines += ["## MLP on mnist5k, every layer in the scheme (first and last layers too)", "",
                  "| weights | acts | accuracy | delta vs float | weight kbit | graph |", "| --- | --- | --- | --- | --- | --- |"]
        for r in result["all_layers"]:
            lines.append(f"| {r['weights']} | {r['acts']} | {100 * r['accuracy']:.1f} | "
                         f"{100 * (r['accuracy'] - base):+.1f} | {r['weight_memory_bits'] / 1000:.1f} | "
                         f"{100 * r['graph_agreement']:.1f} % |")
        lines.append("")
    if "pruning" in result:
        p = result["pruning"]
        lines += ["## Gradual pruning (Zhu & Gupta cubic schedule), MLP on mnist5k", "",
                  f"weights {p['weights']}, activations {p['acts']}; every layer but the output layer pruned to "
                  f"{100 * p['sparsity']:.0f} %:", "",
                  f"- dense accuracy {100 * p['dense']['accuracy']:.1f} %, pruned {100 * p['pruned']['accuracy']:.1f} % "
                  f"(delta {100 * (p['pruned']['accuracy'] - p['dense']['accuracy']):+.1f} points)",
                  f"- zeros in the exported graph's pruned layers: {p['exported_zeros']} of {p['pruned_weights_total']} "
                  f"(requested {p['requested_zeros']}: {'exact' if p['exported_zeros'] == p['requested_zeros'] else 'MISMATCH'})",
                  f"- exported graph agrees with the model on {100 * p['pruned']['graph_agreement']:.1f} % of test samples", ""]
    if "epoch_time" in result:
        e = result["epoch_time"]
        lines += ["## Training speed", "",
                  f"cnv-small W2A2, one epoch on {e['images']} mnist5k images: {e['seconds_per_epoch']} s "
                  f"(one BLAS thread, on a 2-core machine shared with other jobs; an in-run 4096x144x32 float64 "
                  f"GEMM took {1000 * e['baseline_gemm_4096x144x32_seconds']:.2f} ms, the epoch "
                  f"{e['epoch_over_gemm']}x that).", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Top: accuracy against precision per mode (Roth et al. Fig. 3); bottom: accuracy against weight
    memory (Fig. 4)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result["models"])
    fig, axes = plt.subplots(2, n, figsize=(6 * n, 8.5), squeeze=False)
    markers = {"weights": "o", "acts": "s", "both": "^"}
    for col, model in enumerate(result["models"]):
        ax = axes[0][col]
        base = model["rows"][0]["accuracy"]
        for mode in ("weights", "acts", "both"):
            rows = [r for r in model["rows"] if r["mode"] == mode]
            ax.plot([r["precision"] for r in rows], [100 * r["accuracy"] for r in rows], marker=markers[mode],
                    label=f"{mode} quantized")
        ax.axhline(100 * base, color="k", ls="--", lw=1, label="float")
        ax.set_title(model["title"])
        ax.set_xlabel("precision")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax = axes[1][col]
        for mode in ("weights", "both"):
            rows = [r for r in model["rows"] if r["mode"] == mode]
            ax.scatter([r["weight_memory_bits"] / 1000 for r in rows], [100 * r["accuracy"] for r in rows],
                       marker=markers[mode], label=f"{mode} quantized")
            for r in rows:
                ax.annotate(r["precision"], (r["weight_memory_bits"] / 1000, 100 * r["accuracy"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.scatter([model["rows"][0]["weight_memory_bits"] / 1000], [100 * base], marker="*", s=80, color="k",
                   label="float")
        ax.set_xscale("log")
        ax.set_xlabel("weight memory (kbit, first/last layers at 8 bits)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--cnn-epochs", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="2 epochs, digits only (a smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--replot", action="store_true", help="rewrite the table and plot from the saved JSON")
    ap.add_argument("--all-layers-only", action="store_true",
                    help="only (re)run the every-layer-quantized MLP section into the saved JSON")
    args = ap.parse_args(argv)
    if args.all_layers_only:
        result = json.loads((args.out / "accuracy_sweep.json").read_text())
        result["all_layers"] = all_layers(load_mnist5k_split(), result["epochs"])
        atomic_write(args.out / "accuracy_sweep.json", json.dumps(result, indent=1) + "\n")
        args.replot = True
    if args.replot:
        result = json.loads((args.out / "accuracy_sweep.json").read_text())
        atomic_write(args.out / "accuracy_sweep.md", markdown(result))
        plot(result, args.out / "accuracy_sweep.png")
        return 0
    logging.basicConfig(level=logging.WARNING)
    digits = load_digits_split()
    mnist = digits if args.quick else load_mnist5k_split()
    epochs = 2 if args.quick else args.epochs
    cnn_epochs = 2 if args.quick else args.cnn_epochs
    result = {"epochs": epochs, "cnn_epochs": cnn_epochs, "models": []}
    for title, data, arch, ep in (("MLP 256-256, " + ("digits" if args.quick else "mnist5k"), mnist, "mlp:256,256", epochs),
                                  ("cnv-small, digits", digits, "cnv-small", cnn_epochs)):
        rows = []
        for mode, prec, w, a in configs():
            row, _ = run_one(data, arch, w, a, ep)
            row.update(mode=mode, precision=prec)
            rows.append(row)
            print(f"{title:24s} {mode:8s} {prec:8s} W={w:8s} A={a:7s} acc {100 * row['accuracy']:.1f}  "
                  f"graph {row.get('graph_agreement', 'n/a')}  {row['train_seconds']} s", file=sys.stderr, flush=True)
        result["models"].append({"title": title, "arch": arch, "rows": rows})
    if not args.quick:
        result["all_layers"] = all_layers(mnist, epochs)
    # Pruning: W8A8 MLP, dense vs 90 % gradual magnitude pruning of every layer but the last.
    pw, pa, sparsity = "int:8", "int:8", 0.9
    dense, _ = run_one(mnist, "mlp:256,256", pw, pa, epochs)
    pruned, net = run_one(mnist, "mlp:256,256", pw, pa, epochs, prune=sparsity)
    graph = to_integer_graph(net)
    hidden = graph.matmuls[:-1]
    total = sum(n.weights.size for n in hidden)
    requested = sum(int(np.floor(sparsity * n.weights.size + 0.5)) for n in hidden)
    result["pruning"] = {"weights": pw, "acts": pa, "sparsity": sparsity, "dense": dense, "pruned": pruned,
                         "exported_zeros": int(sum(int(np.sum(n.weight_values == 0)) for n in hidden)),
                         "requested_zeros": requested, "pruned_weights_total": int(total)}
    print(f"pruning: dense {dense['accuracy']:.4f} pruned {pruned['accuracy']:.4f} zeros "
          f"{result['pruning']['exported_zeros']}/{requested}", file=sys.stderr, flush=True)
    if not args.quick:
        result["epoch_time"] = epoch_time(mnist)
        print(f"epoch time: {result['epoch_time']}", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "accuracy_sweep.json", json.dumps(result, indent=1) + "\n")
    atomic_write(args.out / "accuracy_sweep.md", markdown(result))
    plot(result, args.out / "accuracy_sweep.png")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
