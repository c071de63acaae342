"""The ``lowbit`` command line: ``demo``, ``train``, ``compile``, ``sim``, ``map``, ``boards``,
``build``, ``flash``.

Errors in user input are printed as one line naming the file or parameter; the exit status is
then 2 and no traceback is shown.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import LowbitError, __version__
from ._args import (
    Parser,
    clock_mhz,
    count,
    fraction,
    image_source,
    images,
    output_dir,
    output_file,
    positive,
    seed,
)
from ._data import (
    accuracy,
    boundary_lines,
    check_labels,
    graph_codes,
    is_identity,
    read_images,
)
from ._options import (
    BUDGET_DEFAULT,
    BUDGET_HELP,
    add_verbosity,
    board_option,
    budget_option,
    dataset_option,
    json_option,
    output_option,
    state_defaults,
)
from ._progress import Bar, SimBar, step_printer

__all__ = ["main"]


def _print_demo(report: dict) -> None:
    acc = report["accuracy"]
    cyc = report["cycles_per_image"]
    print(f"lowbit demo on {report['board']} @ {report['clock_mhz']:g} MHz")
    print(
        "  model            : "
        + " -> ".join(
            f"{n['name']} {n['MW']}x{n['MH']}" if "MW" in n else f"{n['name']} {n['op']}"
            for n in report["model"]
        )
    )
    print(
        f"  accuracy         : float {acc['float']:.4f}   reference {acc['reference']:.4f}   "
        f"rtl {acc['rtl']:.4f}   ({report['test_images']} test images)"
    )
    print(f"  mismatches       : {report['mismatches']} (RTL vs reference, all runs)")
    print(
        f"  cycles per image : measured {cyc['measured']:.2f}   predicted {cyc['predicted']}   "
        f"(error {100 * cyc['relative_error']:.2f} %)"
    )
    print(f"  throughput       : {report['throughput_fps']:,.0f} images/s at the board clock")
    res = ", ".join(f"{k} {v['used']:g}/{v['available']:g}" for k, v in report["resources"].items())
    print(f"  resources (est.) : {res}")
    print(
        "  folding          : "
        + ", ".join(
            f"{s['name']} PE={s['pe']} SIMD={s['simd']} ({s['cycles']} cyc)"
            for s in report["schedule"]
        )
    )
    print(f"  verilog          : {report['outputs']['verilog']}")


def cmd_demo(args) -> int:
    from ..flow import run_demo, write_json

    report = run_demo(
        args.output,
        board=args.board,
        epochs=args.epochs,
        budget=args.budget,
        step=step_printer(),
        epoch_progress=Bar("training", 0),
        sim_progress=SimBar(),
    )
    if args.json:
        write_json(args.json, report)
    _print_demo(report)
    ok = report["mismatches"] == 0 and report["accuracy"]["reference"] == report["accuracy"]["rtl"]
    return 0 if ok else 1


def _with_wire(graph, wire):
    """``graph`` behind an input threshold unit taking ``wire`` pixels (``--input-wire``)."""
    return graph if wire is None else graph.with_input_wire(wire)


def _input_wire(text: str):
    """``--input-wire TYPE:SCALE[:ZERO_POINT]`` as an :class:`~lowbit.ir.boundary.InputQuant`."""
    from ..ir.boundary import InputQuant

    try:
        return InputQuant.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


INPUT_WIRE_HELP = (
    "put an input threshold unit in front: the accelerator takes pixels of this fixed-point "
    "type on the wire (value = (code - ZERO_POINT) * SCALE, e.g. UINT8:1/255) and turns them "
    "into the model's input codes exactly as its input quantizer would (default: none, the "
    "accelerator takes the model's input codes)"
)


def _search_budget(budget: float | None, board: str) -> float:
    """The budget of a folding search on ``board``: ``--budget``, else the board's default
    (:func:`lowbit.mapping.buildsize.default_budget`, the one rule ``build`` also follows)."""
    from ..boards import get_board
    from ..mapping.buildsize import default_budget

    return default_budget(get_board(board)) if budget is None else budget


def cmd_compile(args) -> int:
    from ..boards import get_board
    from ..flow import CompiledDesign, compile_model, compile_zoo, write_json
    from ..ir.graph import IntegerGraph
    from ..mapping import Schedule

    if (args.model is None) == (args.zoo is None):
        raise LowbitError("compile: give either a model file or --zoo NAME (not both)")
    if args.target_fps is not None:
        for flag, value in (
            ("--schedule", args.schedule),
            ("--budget", args.budget),
            ("--zoo", args.zoo),
        ):
            if value is not None:
                raise LowbitError(
                    f"--target-fps chooses the folding of a model file; drop {flag} (or "
                    "--target-fps)"
                )
    if args.zoo is not None:
        if args.input_wire is not None:
            raise LowbitError("compile: --input-wire applies to a model file, not --zoo")
        if args.schedule:
            raise LowbitError(
                "compile: --schedule applies to a model file; --zoo uses the published folding "
                "(or --search)"
            )
        board_name = args.board or "ultra96-v2"
        report = compile_zoo(
            args.zoo,
            args.output,
            board=board_name,
            seed=args.seed,
            width=args.width,
            search=args.search,
            budget=_search_budget(args.budget, board_name) if args.search else args.budget,
            clock_mhz=args.clock,
        )
    else:
        graph = _with_wire(IntegerGraph.load(args.model), args.input_wire)
        if args.schedule and graph.dag_nodes():
            raise LowbitError(
                f"--schedule {args.schedule}: a schedule file applies to a chain; {args.model} is "
                f"a DAG (node {graph.dag_nodes()[0].name!r}), which compile maps itself"
            )
        schedule, board_name = None, args.board or "pynq-z2"
        if args.schedule:  # the schedule fixes the board: --board may only repeat it
            schedule = Schedule.load(args.schedule)
            board_name = get_board(schedule.board).name
            if args.board is not None and args.board != board_name:
                raise LowbitError(
                    f"--board {args.board}: the schedule {args.schedule} was made for "
                    f"{board_name}; drop --board to compile for {board_name}, or map the model "
                    f"again with --board {args.board}"
                )
            if args.budget is not None:  # the folding is fixed: the budget is what it must fit in
                schedule.apply(graph)  # a schedule that does not match the model says so first
                try:
                    schedule.check_fits(graph, budget=args.budget)
                except LowbitError as e:
                    raise LowbitError(
                        f"--budget {args.budget:g} (with --schedule, the share of the board the "
                        f"schedule must fit in): {e}"
                    ) from None
        budget = args.budget if schedule else _search_budget(args.budget, board_name)
        if args.target_fps is not None:
            budget = None  # the target chooses: the cheapest folding reaching it
        report = compile_model(
            graph,
            args.output,
            board=board_name,
            schedule=schedule,
            budget=budget,
            target_fps=args.target_fps,
            clock_mhz=args.clock,
        )
    m = report.mapping
    design = CompiledDesign(args.output)
    graph = IntegerGraph.load(design.model_path)
    # the input quantizer and class map next to the flow's report (CompiledReport ignores keys it
    # does not know)
    doc = json.loads(design.report_path.read_text())
    doc.update(graph.boundary())
    write_json(design.report_path, doc)
    print(
        f"wrote {args.output}: {report.verilog}, {CompiledDesign.SCHEDULE}, {CompiledDesign.REPORT}"
    )
    print(
        f"  {m['cycles_per_image']} cycles/image (bottleneck {m['bottleneck']}), "
        f"{m['throughput_fps']:,.0f} images/s at {m['clock_mhz']:g} MHz on {m['board']}"
    )
    for line in _timing_lines(m):
        print("  " + line)
    print("  " + boundary_lines(graph).replace("\n", "\n  "))
    return 0


def _timing_lines(m: dict) -> list[str]:
    """The compile summary's clock: the target, how the pipeline depths were chosen, whether the
    estimated Fmax meets the target, and each unit's depth and estimate (none for a DAG)."""
    f = m.get("fmax")
    if not f:
        return []
    head = f"clock {m['clock_mhz']:g} MHz (pipeline depths {m.get('pipeline_depths', '-')})"
    if f["fmax_mhz"] is None:
        return [f"{head}; no Fmax estimate: {f['note']}"]
    verdict = "meets" if f["meets_clock"] else "MISSES"
    lines = [
        f"{head}; estimated Fmax "
        f"{f['fmax_mhz']:.1f} MHz ({f['slowest']}) {verdict} it; "
        f"{f['throughput_fps_at_fmax']:,.0f} images/s at that Fmax"
    ]
    units = ", ".join(
        f"{u['name']} {u['pipeline']}"
        + ("" if u["fmax_mhz"] is None else f" ({u['fmax_mhz']:.1f} MHz)")
        for u in f["units"]
    )
    return lines + [f"  depth (estimated Fmax) per unit: {units}"]


@dataclass(frozen=True, eq=False)
class _Images:
    """The images ``sim`` feeds: input codes, labels when known, and where they come from."""

    codes: np.ndarray
    labels: np.ndarray | None
    source: str
    encoded: bool

    def describe(self) -> str:
        how = "floats encoded by the input quantizer" if self.encoded else "integer codes"
        lab = "labelled" if self.labels is not None else "no labels"
        return f"{len(self.codes)} images from {self.source} ({how}, {lab})"


def _default_refusal(graph, lo: int, hi: int, what: str) -> str | None:
    """Why the default data set (values ``lo..hi``) cannot be the graph's input, or ``None``."""
    a, b = graph.input_dtype.stored_range
    q = graph.input_quant
    if a <= lo and hi <= b and is_identity(q):
        return None
    why = f"the model's input type is {graph.input_dtype}"
    if not a <= lo <= hi <= b:
        why += f" (codes {a}..{b})"
    if not is_identity(q):
        why += f" with input quantizer {q.describe()}"
    return (
        f"refusing to feed {what} (values {lo}..{hi}) as input codes: {why}, so the model would "
        "see other values than it was trained on\npass --images FILE.npz with the model's own "
        "data (float 'x' is encoded by the graph's input quantizer, integer 'x' are codes)"
    )


def _load_images(args, graph) -> _Images:
    if isinstance(args.images, int):  # "--images N" (_args.image_source): the first N images
        args.count, args.images = args.images, None
    y = None
    if args.images:
        path = Path(args.images)
        x, y = read_images(path)
        if y is not None:
            check_labels(y, graph.classes, str(path))
        encoded = x.dtype.kind == "f"
        x = graph_codes(graph, x, str(path))
        imgs = _Images(x, y, str(path), encoded)
    else:
        from ..quant.data import load_digits_split

        data = load_digits_split()
        if data.x_test.shape[1] == graph.input_size:
            refusal = _default_refusal(
                graph,
                int(data.x_test.min()),
                int(data.x_test.max()),
                "the digits test split (the default data set)",
            )
            if refusal:
                raise LowbitError(refusal)
            imgs = _Images(data.x_test, data.y_test, "the digits test split", False)
        elif args.count:  # not a digits model: N random inputs over the input type's whole range
            dt = graph.input_dtype
            lo, hi = dt.stored_range
            x = dt.sample(np.random.default_rng(0), (args.count, graph.input_size))
            print(
                f"  {args.count} random inputs in [{lo}, {hi}] (seed 0): the model takes "
                f"{graph.input_size} inputs, not the digits' 64"
            )
            imgs = _Images(x, None, "random codes", False)
        else:
            raise LowbitError(
                f"the model takes {graph.input_size} inputs, not the digits' 64: pass --images "
                "FILE.npz, or --images N for N random inputs"
            )
    if args.count:
        imgs = replace(
            imgs,
            codes=imgs.codes[: args.count],
            labels=None if imgs.labels is None else imgs.labels[: args.count],
        )
    if len(imgs.codes) == 0:
        raise LowbitError(
            f"{imgs.source}: no images to simulate ('x' holds 0 images); a check on zero images "
            "proves nothing"
        )
    return imgs


def _accuracy_summary(graph, imgs: _Images, rtl_labels) -> dict:
    """Reference and RTL class decisions on the images: accuracies (with labels) and the number of
    images whose RTL label differs from the reference's (``graph.predict``)."""
    ref = graph.predict(imgs.codes)
    out: dict = {
        "input": {
            "source": imgs.source,
            "encoded": imgs.encoded,
            "input_quant": graph.boundary()["input_quant"],
        }
    }
    rtl = None if rtl_labels is None or len(rtl_labels) != len(ref) else np.asarray(rtl_labels)
    out["label_mismatches"] = None if rtl is None else int(np.sum(rtl != ref))
    if imgs.labels is not None:
        out["accuracy"] = {
            "reference": accuracy(ref, imgs.labels),
            "rtl": None if rtl is None else accuracy(rtl, imgs.labels),
            "labelled_images": len(imgs.labels),
        }
    return out


def _print_accuracy(summary: dict) -> None:
    acc = summary.get("accuracy")
    if acc:
        rtl = "-" if acc["rtl"] is None else f"{acc['rtl']:.4f}"
        print(
            f"  accuracy           reference {acc['reference']:.4f}   rtl {rtl}   "
            f"({acc['labelled_images']} labelled images)"
        )
    if summary["label_mismatches"] is not None:
        print(f"  label mismatches   {summary['label_mismatches']} (RTL vs reference)")


def _verdict(ok: bool, summary: dict, what: str = "bit-exact") -> bool:
    """Print PASS or FAIL: the simulation's own check and the RTL labels against the reference's
    class decision."""
    labels_ok = not summary["label_mismatches"]
    if ok and labels_ok:
        print(f"PASS: {what}")
    elif ok:
        print(
            f"FAIL: the RTL's labels differ from the reference's class decision on "
            f"{summary['label_mismatches']} images"
        )
    return ok and labels_ok


def cmd_sim(args) -> int:
    from ..flow import CompiledDesign, load_compiled, simulate_compiled, write_json
    from ..tools.simulators import resolve_simulator

    design = CompiledDesign.open(args.dir)
    graph, _ = load_compiled(args.dir) if not design.is_dag else (design.graph(), None)
    if args.fast and args.gate_level:
        raise LowbitError(
            "--fast and --gate-level exclude each other: the gate-level check runs under cocotb"
        )
    if args.family and not args.gate_level:
        raise LowbitError("--family chooses the synthesis of --gate-level; add --gate-level")
    imgs = _load_images(args, graph)
    print(f"  {imgs.describe()}")
    print("  " + boundary_lines(graph).replace("\n", "\n  "))
    x = imgs.codes
    if args.fast:
        return _sim_fast(args, graph, imgs)
    if args.gate_level:
        return _sim_gate_level(args, graph, imgs)
    simulator = resolve_simulator(args.simulator)
    print(f"simulating {len(x)} images with cocotb + {simulator} ...", file=sys.stderr, flush=True)
    sim = simulate_compiled(
        args.dir, x, throttled_images=args.throttled, progress=SimBar(), simulator=simulator
    )
    ref = graph.predict(x)
    summary = {
        "images": len(x),
        "simulator": simulator,
        "mismatches": sim.mismatches,
        "labels_equal_reference": bool(np.array_equal(np.array(sim.labels), ref)),
        "cycles_per_image_measured": sim.steady["cycles_per_image"],
        "runs": [{k: v for k, v in r.items() if k != "labels"} for r in sim.runs],
        "waves": sim.waves,
        **_accuracy_summary(graph, imgs, sim.labels),
    }
    _print_runs(sim.runs)
    if design.is_dag:  # the DAG mapper's model, as on the fast path
        model, measured = design.report().cycles_per_image, sim.steady["cycles_per_image"]
        print(f"  cycles per image: measured {measured}, the DAG mapper's model {model}")
        summary["cycles_predicted"] = {"estimate": model, "equal_per_image": measured == model}
    _print_accuracy(summary)
    if sim.waves:
        print(f"  waveform: {sim.waves}")
    ok = _verdict(sim.ok, summary)
    if not sim.ok:
        print("FAIL: RTL differs from the reference")
    summary["ok"] = ok
    if args.json:
        write_json(args.json, summary)
    return 0 if ok else 1


def _print_runs(runs) -> None:
    """One line per simulation run (cocotb or gate level), and its first five mismatches."""
    for r in runs:
        print(
            f"  {r['name']:18s} images {r['images']:5d}  mismatched {r['mismatched_images']}  "
            f"cycles/image {r['cycles_per_image']}"
        )
        for mm in r["mismatches"][:5]:
            print(
                f"    image {mm['item']}: {mm['where']}[{mm['index']}] got {mm['got']} expected "
                f"{mm['expected']}"
            )


def _sim_gate_level(args, graph, imgs) -> int:
    from ..boards import get_board
    from ..flow import CompiledDesign, load_compiled, write_json
    from ..sim.accel_sim import default_runs
    from ..sim.gatelevel import FAMILIES, simulate_gate_level

    x = imgs.codes
    design = CompiledDesign.open(args.dir)
    kw: dict = {}
    if design.is_dag:  # the shipped Verilog, as 'lowbit sim' (cocotb) simulates it
        report = design.report()
        board, specs = report.mapping["board"], []
        kw = dict(
            verilog=design.require(report.verilog),
            stream_format=report.stream_format,
            predicted_cycles=report.cycles_per_image,
        )
    else:
        _, schedule = load_compiled(args.dir)
        board, specs = schedule.board, schedule.apply(graph)
    family = args.family or ("ecp5" if get_board(board).family == "ecp5" else "xilinx")
    print(
        f"synthesising {args.dir} with {FAMILIES[family].synthesis} and simulating the netlist "
        f"on {len(x)} images ...",
        file=sys.stderr,
        flush=True,
    )
    rep = simulate_gate_level(
        graph,
        specs,
        x,
        Path(args.dir) / "gate_level",
        runs=default_runs(len(x), throttled_images=args.throttled),
        simulator=args.simulator,
        family=family,
        **kw,
    )
    summary = _accuracy_summary(graph, imgs, rep.runs[0].get("labels") if rep.runs else None)
    _print_runs(rep.runs)
    _print_accuracy(summary)
    print(f"  netlist: {rep.netlist}")
    ok = _verdict(rep.ok, summary, "the synthesised netlist is bit-exact")
    if not rep.ok:
        print("FAIL: the netlist differs from the reference")
    if args.json:
        write_json(
            args.json,
            {
                "images": len(x),
                "gate_level": True,
                "family": family,
                "ok": ok,
                "mismatches": rep.mismatches,
                "netlist": rep.netlist,
                "cells": rep.cells,
                "runs": [{k: v for k, v in r.items() if k != "labels"} for r in rep.runs],
                **summary,
            },
        )
    return 0 if ok else 1


def _sim_fast(args, graph, imgs) -> int:
    from ..flow import CompiledDesign, verify_compiled_fast, write_json

    x = imgs.codes
    print(
        f"verifying {len(x)} images on the fast path (compiled Verilator) ...",
        file=sys.stderr,
        flush=True,
    )
    rep = verify_compiled_fast(args.dir, x)
    ref = graph.predict(x)
    summary = {
        "images": len(x),
        "fast": True,
        "ok": rep.ok,
        "mismatch": None if rep.mismatch is None else rep.mismatch.__dict__,
        "labels_equal_reference": bool(np.array_equal(rep.labels, ref)),
        "cycles_per_image_measured": rep.cycles_per_image,
        "first_output_cycle": rep.first_output_cycle,
        "runs": list(rep.runs),
        "waves": rep.waves,
        "seconds": rep.seconds,
        **_accuracy_summary(graph, imgs, rep.labels),
    }
    for r in rep.runs:
        print(
            f"  {r['name']:18s} images {r['images']:6d}  mismatched {r['mismatched_images']}  "
            f"cycles {r['cycles']}  cycles/image {r['cycles_per_image']}"
        )
    if rep.cycles is not None:
        c = rep.cycles
        print(f"  cycles: {c.describe()}")
        summary["cycles_predicted"] = {
            "estimate": c.estimate,
            "exact": c.exact,
            "sparse_layer": c.sparse_layer,
            "equal_per_image": c.equal,
            "reason": c.reason,
        }
    elif graph.dag_nodes() and rep.cycles_per_image is not None:  # a DAG: its mapper's model
        model = CompiledDesign.open(args.dir).report().cycles_per_image
        print(
            f"  cycles per image: measured {rep.cycles_per_image}, the DAG mapper's model {model}"
        )
        summary["cycles_predicted"] = {
            "estimate": model,
            "equal_per_image": rep.cycles_per_image == model,
        }
    if rep.mismatch:
        print(f"  first mismatch: {rep.mismatch}")
    _print_accuracy(summary)
    if rep.waves:
        print(f"  waveform: {rep.waves}")
    print(f"  build {rep.seconds['build']:.1f} s, simulation {rep.seconds['run']:.2f} s")
    ok = _verdict(rep.ok, summary)
    if not rep.ok:
        print("FAIL: RTL differs from the reference")
    summary["ok"] = ok
    if args.json:
        write_json(args.json, summary)
    return 0 if ok else 1


def _given_schedule(args, graph):
    """``map --schedule``: the schedule file, checked against the graph and, with ``--budget``,
    against that share of its board; ``--board`` may only repeat its board."""
    from ..boards import get_board
    from ..mapping import Schedule

    for flag, value in (("--target-fps", args.target_fps), ("--no-sparse", args.no_sparse or None)):
        if value is not None:
            raise LowbitError(f"{flag} chooses a folding; it does not apply with --schedule")
    schedule = Schedule.load(args.schedule)
    name = get_board(schedule.board).name
    if args.board is not None and get_board(args.board).name != name:
        raise LowbitError(
            f"--board {args.board}: the schedule {args.schedule} was made for {name}; leave "
            "--board out to report it there"
        )
    schedule.apply(graph)  # a schedule that does not match the model says so first
    schedule.check_fits(graph, budget=1.0 if args.budget is None else args.budget)
    return schedule


def _note_published_schedule(model) -> None:
    """Say so when ``zoo -o`` wrote the model's published folding next to it."""
    published = Path(model).with_name(Path(model).stem + ".schedule.json")
    if published.is_file():
        print(
            f"note: {published} holds the model's published folding; "
            f"'lowbit map {model} --schedule {published}' reports it",
            file=sys.stderr,
        )


def _map_dag(args, graph) -> int:
    """``lowbit map`` of a DAG (issue 19): :func:`lowbit.flow.steps.map_dag_model`, reported as
    one row per node, the FIFOs, cycles per image and images/s."""
    from ..boards import get_board
    from ..flow.steps import dag_mapping_report, dag_max_cycles, map_dag_model

    for flag, value in (
        ("--schedule", args.schedule),
        ("--dataset", args.dataset),
        ("--markdown", args.markdown),
        ("--plots", args.plots),
    ):
        if value:
            raise LowbitError(
                f"{flag}: not for a DAG model yet (node {graph.dag_nodes()[0].name!r}); 'lowbit "
                "map' of a DAG takes --board, --budget or --target-fps, -o and --json"
            )
    board = get_board(args.board or "pynq-z2")
    max_cycles = None
    if args.target_fps is not None:
        max_cycles = dag_max_cycles(board.name, args.target_fps)
    schedule = map_dag_model(graph, board.name, budget=args.budget, max_cycles=max_cycles)
    report = dag_mapping_report(graph, schedule, board.name)
    if args.output:
        schedule.save(args.output)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_dag_table(report))
        print(boundary_lines(graph))
    if args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _dag_table(report: dict) -> str:
    """The per-node table, the FIFOs and the summary of :func:`dag_mapping_report`."""
    head = ("node", "op", "PE", "SIMD", "cycles", "LUT", "FF", "BRAM36")
    rows = [head] + [
        (
            n["name"],
            n["op"],
            str(n["pe"]),
            str(n["simd"]),
            f"{n['cycles']:,}",
            f"{n['resources']['lut']:,}",
            f"{n['resources']['ff']:,}",
            f"{n['resources']['bram36']:g}",
        )
        for n in report["layers"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for f in report["fifos"]:
        lines.append(f"FIFO into {f['node']} (input {f['input']}): {f['depth']} beats")
    r = report["resources"]
    lines += [
        f"{report['cycles_per_image']:,} cycles/image (bottleneck {report['bottleneck']}), "
        f"{report['throughput_fps']:,.0f} images/s at {report['clock_mhz']:g} MHz on "
        f"{report['board']}",
        f"estimated total: {r['lut']:,} LUT, {r['ff']:,} FF, {r['bram36']:g} BRAM36, "
        f"{r['dsp']:,} DSP",
    ]
    return "\n".join(lines)


def cmd_map(args) -> int:
    from .._io import atomic_write
    from ..ir.graph import IntegerGraph
    from ..mapping import search_folding
    from ..mapping.report import format_markdown, format_text, mapping_report, write_plots

    graph = _with_wire(IntegerGraph.load(args.model), args.input_wire)
    if graph.dag_nodes():
        return _map_dag(args, graph)
    kw: dict = {}
    if args.target_fps is not None:  # the cheapest folding reaching it, within 0.7 of the board
        kw["target_fps"] = args.target_fps
    else:
        kw["budget"] = _search_budget(args.budget, args.board or "pynq-z2")
    density = args.act_density
    if args.dataset:
        from ..mapping.folding import activation_densities
        from ..quant.data import load_dataset

        data = load_dataset(args.dataset)
        if data.x_test.shape[1] != graph.input_size:
            raise LowbitError(
                f"--dataset {args.dataset}: images have {data.x_test.shape[1]} values, the model "
                f"takes {graph.input_size}"
            )
        density = activation_densities(graph, data.x_test, per_column=True)
        logging.getLogger(__name__).info(
            "mean activation densities on %s: %s",
            args.dataset,
            {k: round(float(np.mean(v)), 3) for k, v in density.items()},
        )
    kw["act_density"] = None if args.no_sparse else density
    if args.schedule:  # report a given (hand-edited) folding instead of searching one
        schedule = _given_schedule(args, graph)
    else:
        schedule = search_folding(graph, args.board or "pynq-z2", **kw)
        _note_published_schedule(args.model)
    report = mapping_report(graph, schedule, act_density=density)
    if args.dataset:
        report["act_density"] = {
            "data": args.dataset,
            "mean_per_layer": {k: float(np.mean(v)) for k, v in density.items()},
        }
    if args.output:
        schedule.save(args.output)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_text(report), end="")
        print(boundary_lines(graph))
    if args.markdown:
        atomic_write(args.markdown, format_markdown(report))
    if args.plots:
        write_plots(report, args.plots)
    written = [p for p in (args.output, args.markdown, args.plots) if p]
    if written:
        print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def cmd_boards(args) -> int:
    from ..boards import BOARDS

    if args.json:
        print(json.dumps([b.as_dict() for b in BOARDS.values()], indent=2))
        return 0
    print(
        f"{'board':12s} {'part':20s} {'family':16s} {'PS':6s} {'LUT':>8s} {'FF':>8s} "
        f"{'BRAM36':>7s} {'URAM':>5s} {'DSP':>6s} {'MHz':>5s} {'DDR Gb/s':>8s} {'AXI-HP':>8s} "
        f"{'openFPGALoader':14s}"
    )
    for b in BOARDS.values():
        lut = f"{b.lut}" if b.lut_inputs == 6 else f"{b.lut}*"
        bram = f"{b.bram36:g}" if b.bram_kbits is None else f"{b.block_ram_kbits / 36:.1f}*"
        ddr = "-" if b.ddr_bandwidth_gbps is None else f"{b.ddr_bandwidth_gbps:g}"
        hp = "-" if not b.axi_hp_ports else f"{b.axi_hp_ports}x{b.axi_hp_width_bits}"
        print(
            f"{b.name:12s} {b.part:20s} {b.family:16s} {b.ps:6s} {lut:>8s} {b.ff:8d} {bram:>7s} "
            f"{b.uram:5d} {b.dsp:6d} {b.fabric_clock_mhz:5g} {ddr:>8s} {hp:>8s} "
            f"{b.openfpgaloader_board or '-':14s}"
        )
    if any(b.lut_inputs == 4 or b.bram_kbits is not None for b in BOARDS.values()):
        print("* LUT4 devices; BRAM36 column in 36 Kb equivalents of the device's block RAM")
    return 0


def cmd_build(args) -> int:
    from ..deploy.build import build
    from ._estimate import estimate_lines, throughput_lines

    def show(est) -> None:  # before the tools start; a long build is also warned about (logging)
        print(
            f"build-size estimate: yosys + nextpnr {est.summary()} ({est.lut:,.0f} LUT6-eq)",
            flush=True,
        )

    m = build(
        args.source,
        args.board,
        args.output,
        run=args.run,
        budget=args.budget,
        clock_mhz=args.clock,
        timeout=args.timeout,
        on_estimate=show,
    )
    print(f"wrote {args.output}: {m['flow']} build for {m['board']} ({m['part']})")
    if m["flow"] == "open":
        util = ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in m["utilisation"].items())
        verdict = "meets" if m["meets_clock"] else "MISSES"
        print(
            f"  bitstream {m['bitstream']}; Fmax {m['fmax_mhz']:.2f} MHz {verdict} the requested "
            f"{m['clock_mhz']:g} MHz"
        )
        if m.get("pll"):
            p = m["pll"]
            print(
                f"  clock: {p['primitive']} from the {p['in_mhz']:g} MHz oscillator to "
                f"{p['out_mhz']:g} MHz (requested {p['requested_mhz']:g} MHz)"
            )
        print(f"  utilisation: {util}")
        print(
            f"  UART {m['uart']['baud']} baud: {m['uart']['in_bytes']} bytes per input beat, "
            f"{m['uart']['out_bytes']} bytes per result"
        )
    elif not args.run:
        print(f"  Vivado plan ({m['ps']}, {m['clock_mhz']:g} MHz): {', '.join(m['files'])}")
        check = m.get("plan_check")
        if isinstance(check, dict):
            print(
                f"  dry run of build.tcl and bd.tcl without Vivado: {check['cells']} cells, "
                f"{check['pins_checked']} pin references, {check['automations']} automations, "
                f"interfaces {', '.join(check['interfaces'])} checked"
            )
        elif check:
            print(f"  dry run of the plan {check}")
        for p in m.get("weight_ports", []):
            print(
                f"  weights of {p['layer']} from DDR: fetcher {p['index']} on "
                f"{p['hp_port']} ({p['words']} words of {p['word_bits']} bits per vector, "
                f"driver/weights_w{p['index']}.bin)"
            )
        print(
            "  vivado is "
            f"{'on PATH: pass --run' if shutil.which('vivado') else 'not on PATH here'}; to build "
            f"elsewhere: copy {args.output} to a machine with Vivado and run 'sh build.sh' in it "
            "(writes lowbit.bit, lowbit.hwh, lowbit.xsa)"
        )
    for line in estimate_lines(m) + throughput_lines(m):
        print(line)
    return 0


def cmd_flash(args) -> int:
    from ..deploy.flash import flash, plan_flash

    plan = plan_flash(args.dir, args.board, args.via, root=args.sysfs_root, manager=args.manager)
    if not args.yes:
        print(f"dry run (pass --yes to program {plan.board.name}):")
        for c in plan.commands:
            print(f"  {c}")
        return 0
    print(flash(plan))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lowbit", description="Low-bit neural networks to verified FPGA hardware.")
    p.add_argument("--version", action="version", version=f"lowbit {__version__}")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log library progress (also after the command)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser(
        "demo",
        help="the whole flow on the built-in digits example",
        parents=[
            output_option(
                "dir", "model, schedule, Verilog and report", default="demo_out", old="--out"
            ),
            board_option("pynq-z2"),
            budget_option(0.05, "default 0.05: a small design Verilator compiles in seconds"),
            json_option("the report"),
        ],
    )
    d.add_argument(
        "--epochs",
        type=count,
        default=None,
        help="training epochs of the binarized MLP (default 40)",
    )
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser(
        "compile",
        help="map a model onto a board and generate Verilog",
        parents=[
            output_option("dir", "Verilog, schedule and report", required=True),
            board_option(
                None, note="default pynq-z2; ultra96-v2 with --zoo; with --schedule the schedule's"
            ),
            budget_option(
                None,
                f"{BUDGET_DEFAULT}; with --schedule or a --zoo model's published folding, which "
                "fix the folding: the share the design must fit in, default 1",
            ),
        ],
    )
    c.add_argument("model", nargs="?", help="model file (.npz) from 'lowbit train'")
    c.add_argument(
        "--zoo",
        metavar="NAME",
        help="a built-in model instead of a file: cnv-w1a1, cnv-w2a2 or lfc-w1a1 "
        "(random weights, published folding; default: none, give a model file)",
    )
    c.add_argument("--seed", type=seed, default=0, help="weight seed of a --zoo model")
    c.add_argument(
        "--search",
        action="store_true",
        help="with --zoo: search the folding instead of the published one",
    )
    c.add_argument(
        "--width",
        type=positive,
        default=1.0,
        help="with --zoo: scale the channel counts (same topology)",
    )
    c.add_argument(
        "--schedule",
        metavar="FILE",
        help="apply this schedule (JSON from 'lowbit map -o') instead of searching (default: "
        "search)",
    )
    c.add_argument(
        "--target-fps",
        type=positive,
        help="the cheapest folding reaching this many images/s at the clock (--clock, else the "
        "board's), for a chain or a DAG model (default: the fastest within --budget)",
    )
    c.add_argument(
        "--clock",
        type=clock_mhz,
        metavar="MHZ",
        help="target clock of a chain (FINN's synth_clk_period_ns): the schedule's clock becomes "
        "MHZ and each MVTU and threshold unit gets the smallest pipeline depth whose estimated "
        "Fmax reaches it (the deepest when none does), replacing a --schedule file's depths; on "
        "boards without an Fmax model (Xilinx) only the clock is set (default: the board's "
        "clock, or the --schedule file's clock and depths)",
    )
    c.add_argument(
        "--input-wire", type=_input_wire, metavar="TYPE:SCALE[:ZERO_POINT]", help=INPUT_WIRE_HELP
    )
    c.set_defaults(func=cmd_compile)

    s = sub.add_parser(
        "sim",
        help="simulate a compiled design under cocotb (Verilator or Icarus), bit-exact",
        parents=[json_option("the results")],
    )
    s.add_argument("dir", help="directory written by 'lowbit compile'")
    s.add_argument(
        "--images",
        type=image_source,
        help=".npz file with images 'x' (integer codes, or floats the graph's input quantizer "
        "encodes) and optional labels 'y' (accuracy), or a number N: the first N images of the "
        "digits test split (default: all of it, when the input type holds its pixels 0..16 as "
        "they are), or N random inputs when the model does not take 64 inputs",
    )
    s.add_argument(
        "--count", type=images, help="simulate only the first COUNT images (default: all)"
    )
    s.add_argument("--throttled", type=count, default=100, help="images per randomly throttled run")
    s.add_argument(
        "--simulator",
        choices=("verilator", "icarus"),
        help="simulator of the cocotb runs (default: $SIM, else verilator)",
    )
    s.add_argument(
        "--fast",
        action="store_true",
        help="compiled Verilator path: whole data sets in seconds (no cocotb)",
    )
    s.add_argument(
        "--gate-level",
        action="store_true",
        help="synthesise with yosys and simulate the netlist with the primitives' models (xilinx: "
        "-nobram; ecp5: block RAM with lowbit's DP16KD model)",
    )
    s.add_argument(
        "--family",
        choices=("xilinx", "ecp5"),
        help="synthesis of --gate-level: xilinx (synth_xilinx, 7-series) or ecp5 (synth_ecp5, "
        "the open flow's script) (default: ecp5 for a design compiled for an ECP5 board, else "
        "xilinx)",
    )
    s.set_defaults(func=cmd_sim)

    m = sub.add_parser(
        "map",
        help="search a folding for a model (or take --schedule) and report its predicted costs",
        parents=[
            board_option(None, note="default pynq-z2; with --schedule, the schedule's board"),
            output_option("file", "the schedule (JSON) for 'lowbit compile --schedule'"),
            dataset_option(
                None,
                "measure each layer's activation density on its test split instead of "
                "--act-density",
                old="--act-data",
            ),
        ],
    )
    m.add_argument("model", help="model file (.npz)")
    goal = m.add_mutually_exclusive_group()
    goal.add_argument(  # in a group with --target-fps, so not from budget_option
        "--budget",
        type=fraction,
        metavar="SHARE",
        help=f"{BUDGET_HELP} ({BUDGET_DEFAULT}): the fastest folding within it",
    )
    goal.add_argument(
        "--target-fps",
        type=positive,
        help="the cheapest folding reaching this many images/s (default: use --budget)",
    )
    m.add_argument(
        "--schedule",
        metavar="FILE",
        help="report this folding (from 'map -o' or 'zoo -o', possibly edited) instead of "
        "searching one; --budget is then the share of the board it must fit in (default: search)",
    )
    m.add_argument(
        "--input-wire", type=_input_wire, metavar="TYPE:SCALE[:ZERO_POINT]", help=INPUT_WIRE_HELP
    )
    m.add_argument(
        "--markdown",
        type=output_file,
        metavar="PATH",
        help="write the report as Markdown (default: not written)",
    )
    m.add_argument(
        "--plots",
        type=output_dir,
        metavar="DIR",
        help="write cycles.png and resources.png here (default: not written)",
    )
    m.add_argument(
        "--json",
        action="store_true",
        help="print the full report as JSON on stdout instead of the table (a flag here: no PATH)",
    )
    m.add_argument(
        "--act-density",
        type=fraction,
        default=0.5,
        help="expected share of non-zero input activations of pruned fully connected layers, for "
        "the sparse engine's cycle model (default 0.5)",
    )
    m.add_argument(
        "--no-sparse",
        action="store_true",
        help="keep every layer on the dense MVTU (no sparse-engine placement)",
    )
    m.set_defaults(func=cmd_map)

    b = sub.add_parser("boards", help="list the known boards")
    b.add_argument(
        "--json",
        action="store_true",
        help="print every field of every record as JSON on stdout (a flag here: no PATH)",
    )
    b.set_defaults(func=cmd_boards)

    bu = sub.add_parser(
        "build",
        help="a bitstream (open-flow boards) or a Vivado plan (Zynq boards)",
        parents=[
            board_option(None, required=True),
            output_option("dir", "the bitstream or Vivado plan and build.json", required=True),
            budget_option(None, f"when SOURCE is a model; {BUDGET_DEFAULT}"),
        ],
    )
    bu.add_argument("source", help="model file (.npz) or a directory written by 'lowbit compile'")
    bu.add_argument(
        "--clock", type=clock_mhz, metavar="MHZ", help="fabric clock (default: the schedule's)"
    )
    bu.add_argument(
        "--run", action="store_true", help="Zynq boards: run the Vivado plan (needs vivado on PATH)"
    )
    bu.add_argument(
        "--timeout",
        type=positive,
        default=3600.0,
        metavar="SECONDS",
        help="open flow: seconds each tool (yosys, nextpnr, the packer) may run; a tool that fails "
        "or runs out of time leaves its logs in OUTPUT/logs/; a design whose build is estimated "
        "to take longer is refused before the tools start (default 3600)",
    )
    bu.set_defaults(func=cmd_build)

    fl = sub.add_parser(
        "flash",
        help="program a board with the output of 'lowbit build' (dry run by default)",
        parents=[board_option(None, required=True)],
    )
    fl.add_argument("dir", help="directory written by 'lowbit build'")
    fl.add_argument(
        "--via",
        choices=("openfpgaloader", "fpga-manager", "pynq", "xsct"),
        default="openfpgaloader",
        help="how to program it: openfpgaloader (JTAG), fpga-manager (Linux on the board), pynq "
        "(the PYNQ overlay API) or xsct (Xilinx tools)",
    )
    fl.add_argument(
        "--yes", action="store_true", help="program the board (otherwise print the commands)"
    )
    fl.add_argument(
        "--sysfs-root",
        default="/",
        help="fpga-manager: root holding sys/ and lib/firmware/ (default /)",
    )
    fl.add_argument(
        "--manager", default="fpga0", help="fpga-manager: device under /sys/class/fpga_manager"
    )
    fl.set_defaults(func=cmd_flash)

    # Sub-commands of the other parts of the toolkit, each in its own module.
    for register in _PLUGINS:
        register(sub)
    for parser in {id(q): q for q in sub.choices.values()}.values():
        add_verbosity(parser)
        state_defaults(parser)
    return p


def _plugins():
    from .builtin import register as zoo_cmds
    from .evaluate import register as eval_cmds
    from .onnx import register as onnx_cmds
    from .run import register as run_cmds
    from .sparse import register as sparse_cmds
    from .synth import register as mapping_cmds
    from .train import register as quant_cmds

    return (quant_cmds, onnx_cmds, eval_cmds, sparse_cmds, zoo_cmds, mapping_cmds, run_cmds)


_PLUGINS = _plugins()


HEARTBEAT_S = 30.0
"""On a terminal, every command says every this many seconds that it is still running."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a refused argument (status 2), --help or --version (0)
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command != "run" and sys.stderr.isatty():  # run has its own, per step
            from ..flow.heartbeat import Heartbeat

            with Heartbeat(f"lowbit {args.command}", HEARTBEAT_S, _say):
                return args.func(args)
        return args.func(args)
    except LowbitError as e:
        print(f"lowbit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lowbit {args.command}: interrupted", file=sys.stderr)
        return 130
