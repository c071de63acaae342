"""Sub-commands of ``lowbit`` for the quantization zoo: ``train`` with any scheme (issue 3)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace

import numpy as np

from .. import LowbitError
from ._args import count, positive, seed
from ._options import dataset_option, json_option, output_option
from ._vocab import parse_scheme, scheme_name, train_spelling

__all__ = ["register", "cmd_train", "train_report"]


def _bits(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise LowbitError(f"bit widths must be an integer or 'none', not {text!r}") from None


def _distill(text: str) -> tuple[float, float]:
    """``--distill T:ALPHA``: the temperature ``T > 0`` and the weight ``ALPHA`` in [0, 1]."""
    expected = "T:ALPHA, a temperature T > 0 and a weight ALPHA in [0, 1] (e.g. 4:0.7)"
    parts = text.split(":")
    try:
        t, alpha = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        t = alpha = math.nan
    if not (math.isfinite(t) and t > 0 and 0 <= alpha <= 1):
        raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
    return t, alpha


def _low_rank(text: str) -> tuple[int | float, int, str]:
    """``--low-rank [tucker2:|cp:]R|ENERGY[:BITS]``: the method of the convolutions (default
    tucker2), an integer rank ``R >= 1`` or an energy in (0, 1] (with a decimal point), and the
    bottleneck bits in 2..8 (default 8)."""
    expected = (
        "[tucker2:|cp:]R|ENERGY[:BITS], an integer rank R >= 1 or an energy fraction in (0, 1] "
        "such as 0.9, optionally the bottleneck bits 2..8, convolutions by Tucker-2 or CP "
        "(e.g. 16, 0.9:6 or cp:4)"
    )
    from ..quant.train.lowrank import METHODS

    method, sep, rest = text.partition(":")
    if not (sep and method in METHODS):
        method, rest = "tucker2", text
    target, _, bits_text = rest.partition(":")
    try:
        bits = int(bits_text) if bits_text else 8
        value: int | float = int(target) if target.strip().isdigit() else float(target)
    except ValueError:
        value, bits = math.nan, 0
    ok = (
        value >= 1 if isinstance(value, int) else (math.isfinite(value) and 0 < value <= 1)
    ) and 2 <= bits <= 8
    if not ok:
        raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
    return value, bits, method


def _prune_channels(text: str) -> tuple[float, str]:
    """``--prune-channels FRACTION[:l1|apoz]``: a fraction in (0, 1) and the criterion."""
    expected = "FRACTION[:l1|apoz], a fraction in (0, 1) of each hidden layer's channels"
    frac_text, _, by = text.partition(":")
    by = by or "l1"
    try:
        frac = float(frac_text)
    except ValueError:
        frac = math.nan
    if not (math.isfinite(frac) and 0 < frac < 1 and by in ("l1", "apoz")):
        raise argparse.ArgumentTypeError(f"expected {expected} (e.g. 0.5:apoz), not {text!r}")
    return frac, by


def train_report(net, data, graph, seconds: float) -> dict:
    """The machine-readable summary of a trained model: accuracy, memory, operation counts."""
    from ..quant.train.loop import op_counts, weight_memory_bits

    pred = net.predict(data.x_test)
    report = {
        "weights": [s.name for s in net.weight_specs],
        "acts": net.acts.name,
        "layers": [
            {"kind": L.kind, "out": L.out, **({"bottleneck": L.bottleneck} if L.bottleneck else {})}
            for L in net.layers
        ],
        "test_samples": int(len(data.y_test)),
        "accuracy": float(np.mean(pred == data.y_test)),
        "train_accuracy": float(np.mean(net.predict(data.x_train) == data.y_train)),
        "weight_memory_bits": weight_memory_bits(net),
        "weights_total": int(sum(net.params[f"W{i}"].size for i in range(net.n_layers))),
        "ops": op_counts(net),
        "train_seconds": round(seconds, 3),
    }
    if graph is not None:
        gpred = graph.predict(data.x_test)
        report["integer_graph_accuracy"] = float(np.mean(gpred == data.y_test))
        report["integer_graph_disagreements"] = int(np.sum(gpred != pred))
        zeros = sum(int(np.sum(n.weight_values == 0)) for n in graph.matmuls)
        report["weight_zeros"] = zeros
    return report


def cmd_train(args) -> int:
    from ..quant.data import load_dataset
    from ..quant.export import to_integer_graph
    from ..quant.share import export_codebooks
    from ..quant.train.loop import ZooConfig, train_teacher, train_zoo
    from ._progress import Bar

    arch = args.arch
    first, last = _bits(args.first_bits), _bits(args.last_bits)
    if args.hidden is not None:  # the walking skeleton's option: an all-binary MLP
        if not all(h.strip().isdigit() for h in args.hidden.split(",") if h.strip()):
            raise LowbitError(
                f"--hidden must be a comma-separated list of integers, not {args.hidden!r}"
            )
        arch = "mlp:" + ",".join(h.strip() for h in args.hidden.split(",") if h.strip())
        first = last = None
    weights = train_spelling(parse_scheme(args.weights, "--weights", "train-weights"))
    acts = train_spelling(parse_scheme(args.acts, "--acts", "train-acts"))
    if args.low_rank and args.prune_channels:
        raise LowbitError("--low-rank and --prune-channels cannot be combined: choose one")
    for flag, on in (("--low-rank", args.low_rank), ("--prune-channels", args.prune_channels)):
        if on and (args.share or args.prune):
            raise LowbitError(f"{flag} cannot be combined with --share or --prune")
    try:
        config = ZooConfig(
            arch=arch,
            weights=weights,
            acts=acts,
            first_bits=first,
            last_bits=last,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            prune=args.prune,
            prune_mode=args.prune_mode,
            share=args.share,
            ste=args.ste,
            seed=args.seed,
            low_rank=args.low_rank[0] if args.low_rank else None,
            low_rank_bits=args.low_rank[1] if args.low_rank else 8,
            low_rank_method=args.low_rank[2] if args.low_rank else "tucker2",
            prune_channels=args.prune_channels[0] if args.prune_channels else None,
            prune_channels_by=args.prune_channels[1] if args.prune_channels else "l1",
            finetune_epochs=args.finetune_epochs,
        )
    except (TypeError, ValueError) as e:
        raise LowbitError(str(e)) from None
    if args.output and (config.weights == "float" and not args.share or config.acts == "float"):
        raise LowbitError(
            f"-o: float weights or activations (--weights {config.weights}, --acts {config.acts}) "
            "have no integer graph; quantize both, or drop -o and use --json"
        )
    data = load_dataset(args.dataset, seed=args.split_seed)
    teacher_logits, distill = None, None
    if args.distill is not None or args.teacher is not None:
        if args.distill is not None:
            t, alpha = args.distill  # checked by _distill
            config = replace(config, distill_temperature=t, distill_alpha=alpha)
        t0 = time.perf_counter()
        if args.teacher is not None:
            from ..quant.train.onnx_teacher import onnx_teacher

            loaded, teacher_logits = onnx_teacher(args.teacher, data)
            name, accuracy = f"ONNX {args.teacher}", loaded.accuracy
        else:
            trained, teacher_logits = train_teacher(
                data, config, progress=Bar("teacher", config.epochs)
            )
            name, accuracy = "FLOAT weights and acts, " + arch, trained.accuracy
        distill = {
            "temperature": config.distill_temperature,
            "alpha": config.distill_alpha,
            "teacher": name,
            "teacher_accuracy": accuracy(data.x_test, data.y_test),
            "teacher_train_accuracy": accuracy(data.x_train, data.y_train),
            "teacher_seconds": round(time.perf_counter() - t0, 3),
        }
        print(
            f"teacher ({distill['teacher']}): test accuracy {distill['teacher_accuracy']:.4f}; "
            f"distilling at T {config.distill_temperature:g}, alpha {config.distill_alpha:g}"
        )
        sys.stdout.flush()
    t0 = time.perf_counter()
    total = config.epochs + (config.share_epochs if config.share else 0)
    net = train_zoo(data, config, teacher_logits=teacher_logits, progress=Bar("training", total))
    seconds = time.perf_counter() - t0
    graph = to_integer_graph(net) if net.exportable else None
    report = train_report(net, data, graph, seconds)
    report.update({"dataset": args.dataset, "arch": arch, "seed": args.seed})
    if distill is not None:
        report["distill"] = distill
    if config.low_rank is not None:
        report["low_rank"] = {
            "target": config.low_rank,
            "bits": config.low_rank_bits,
            "method": config.low_rank_method,
        }
    if config.prune_channels is not None:
        report["prune_channels"] = {
            "fraction": config.prune_channels,
            "by": config.prune_channels_by,
        }
    if config.low_rank is not None or config.prune_channels is not None:
        report["finetune_epochs"] = config.finetune_epochs
    if args.output:
        if graph is None:
            raise LowbitError(
                "-o: the trained network is not fully quantized and has no integer graph; drop -o "
                "and use --json"
            )
        graph.save(args.output)
        report["model"] = str(args.output)
        if config.share:
            cb = export_codebooks(net, str(args.output).removesuffix(".npz") + ".codebooks.npz")
            report["codebooks"] = str(cb)
    if args.json:
        from .._io import atomic_write

        atomic_write(args.json, json.dumps(report, indent=2) + "\n")
    ops = ", ".join(f"{k} {v:,}" for k, v in report["ops"].items())
    line = f"test accuracy {report['accuracy']:.4f}"
    if graph is not None:
        line += (
            f" (integer graph {report['integer_graph_accuracy']:.4f}, "
            f"{report['integer_graph_disagreements']} disagreements)"
        )
    print(("wrote " + str(args.output) + ": " if args.output else "") + line)
    print(
        f"  weights {'/'.join(scheme_name(w) for w in report['weights'])}, acts "
        f"{scheme_name(report['acts'], acts=True)}: "
        f"{report['weight_memory_bits']:,} bits of weight memory "
        f"({report['weights_total']:,} weights)"
    )
    print(f"  operations per inference: {ops}")
    sys.stdout.flush()
    return 0


def register(sub) -> None:
    """Add this module's sub-commands to the ``lowbit`` parser's ``sub`` (an argparse sub-parsers
    object)."""
    t = sub.add_parser(
        "train",
        help="train a quantized MLP or small CNN and save its integer graph",
        description="Train with any scheme of the quantization zoo and export the integer graph. "
        "Schemes are the IR's data types (case-insensitive): BIPOLAR, TERNARY, INT<k>, UINT<k>, "
        "POW2_<b>, FLOAT; the old spellings binary, int:k, log2:b are accepted for one release.",
        parents=[
            output_option(
                "file", "the integer graph (.npz); with --share also <name>.codebooks.npz"
            ),
            dataset_option("digits", "training and test data"),
            json_option("the report"),
        ],
    )
    t.add_argument(
        "--arch", default="mlp:256,256", help="mlp:W1,W2,... or cnv-small (default mlp:256,256)"
    )
    t.add_argument(
        "--hidden",
        help="hidden widths of an all-binary MLP (the walking skeleton's option): "
        "--arch mlp:W with --first-bits none --last-bits none (default: use --arch)",
    )
    t.add_argument(
        "--weights",
        default="BIPOLAR",
        metavar="SCHEME",
        help="weight scheme of the hidden layers: BIPOLAR, TERNARY, INT<2..16>, POW2_<2..6> or "
        "FLOAT, or a training rule: bc, ttq, inq:<2..6>, dorefa:<2..16> (default BIPOLAR)",
    )
    t.add_argument(
        "--acts",
        default="BIPOLAR",
        metavar="SCHEME",
        help="activation scheme: BIPOLAR, UINT<2..8> or FLOAT (default BIPOLAR)",
    )
    t.add_argument(
        "--first-bits",
        default="8",
        help="int bits of the first layer's weights, or none (default 8)",
    )
    t.add_argument(
        "--last-bits", default="8", help="int bits of the last layer's weights, or none (default 8)"
    )
    t.add_argument(
        "--prune",
        type=float,
        help="final sparsity S of every layer but the last (gradual, cubic; default: no pruning)",
    )
    t.add_argument(
        "--prune-mode",
        default="layer",
        choices=("layer", "global"),
        help="magnitude pruning per layer or over all pruned layers together (default layer)",
    )
    t.add_argument(
        "--share",
        type=int,
        help="K shared weight values per layer (k-means, index 0 = zero; default: no sharing)",
    )
    t.add_argument(
        "--distill",
        type=_distill,
        metavar="T:ALPHA",
        help="knowledge distillation: first train a float teacher (same arch, FLOAT weights and "
        "acts), then the model on (1 - ALPHA) * CE + ALPHA * T^2 * KL(teacher || model) at "
        "temperature T, e.g. 4:0.7 (default: no teacher)",
    )
    t.add_argument(
        "--teacher",
        metavar="FILE.onnx",
        help="distil this float ONNX classifier instead of training a teacher: one input taking "
        "the data set's images as they are (batch, features) or (batch, C, H, W), one output of "
        "class scores (batch, classes); at --distill's T:ALPHA (default 4:0.5) (default: none)",
    )
    t.add_argument(
        "--low-rank",
        type=_low_rank,
        metavar="[cp:]R|ENERGY[:BITS]",
        help="after training, factorise every hidden layer (SVD of fc layers; convolutions by "
        "Tucker-2, or with cp: by CP into a 1x1, a depthwise KxK and a 1x1 convolution) at "
        "integer rank R or at the rank keeping the fraction ENERGY of the squared norm, with "
        "signed BITS-bit bottlenecks (default 8), then fine-tune (default: no factorisation)",
    )
    t.add_argument(
        "--prune-channels",
        type=_prune_channels,
        metavar="FRACTION[:l1|apoz]",
        help="after training, remove FRACTION of every hidden layer's channels, those of smallest "
        "filter L1 norm (l1, the default) or largest APoZ (apoz, needs UINT activations), then "
        "fine-tune (default: no channel pruning)",
    )
    t.add_argument(
        "--finetune-epochs",
        type=count,
        default=3,
        help="fine-tuning epochs after --low-rank or --prune-channels (default 3)",
    )
    t.add_argument("--epochs", type=count, default=10, help="training epochs")
    t.add_argument("--batch-size", type=count, default=64, help="images per training step")
    t.add_argument("--lr", type=positive, default=3e-3, help="learning rate")
    t.add_argument("--optimizer", default="adam", choices=("adam", "sgd"), help="optimizer")
    t.add_argument(
        "--ste",
        default="gate",
        choices=("gate", "identity"),
        help="straight-through estimator of sign: pass where |x| <= 1 (gate) or everywhere",
    )
    t.add_argument("--seed", type=seed, default=0, help="seed of the weights and batches")
    t.add_argument(
        "--split-seed", type=seed, default=0, help="seed of the digits/mnist5k train/test split"
    )
    t.set_defaults(func=cmd_train)
