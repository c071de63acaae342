"""The end-to-end flow, as library functions the CLI calls: train, compile, simulate, demo.

Every step is reachable from Python::

    from lowbit import flow
    report = flow.run_demo("demo_out")

Outputs are written to a temporary directory and renamed into place, so an interrupted run
never leaves a half-written result directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import LowbitError
from .._io import cannot_write, umask_mode
from ..boards import get_board
from ..hw.dag.top import DagAccelerator, dag_stream_format
from ..hw.fmax import fmax_model
from ..hw.top import Accelerator, stream_format
from ..hw.verilog import TOPLEVEL, write_verilog
from ..ir.graph import IntegerGraph
from ..limits import LIMITS
from ..mapping import DEFAULT_BUDGET, Schedule, search_folding
from ..mapping.buildsize import default_budget
from ..mapping.dag import DagSchedule, map_dag, vectors_of
from ..mapping.report import mapping_report
from ..mapping.schedule import complete_layers, ddr_stream_bits
from ..mapping.timing import pipeline_for_clock
from ..quant import builtin as zoo
from ..quant.data import load_digits_split
from ..quant.train.binary_mlp import TrainConfig, train_binary_mlp
from ..sim.accel_sim import default_runs, simulate
from ..sim.verify import default_patterns, verify_fast
from .compiled import CompiledDesign, CompiledReport, write_json

__all__ = [
    "compile_model",
    "dag_mapping_report",
    "is_dag",
    "map_dag_model",
    "dag_max_cycles",
    "compile_zoo",
    "zoo_schedule",
    "load_compiled",
    "simulate_compiled",
    "verify_compiled_fast",
    "run_demo",
]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


FAILED_LOGS = "logs"
"""The directory of a failed build's tool logs, the only thing a failure leaves at the output."""


@contextmanager
def _staged_dir(out_dir: str | os.PathLike, marker: str):
    """Yield a temporary sibling of ``out_dir``; on success it replaces ``out_dir``.

    ``out_dir`` may be absent, an empty directory, a previous output of the same kind (one that
    holds the file ``marker``) or what a failed run left (only the directory :data:`FAILED_LOGS`
    of its tools' logs), which is replaced whole on success. Anything else is refused with a
    :class:`LowbitError` before anything is written: a regular file, or a directory of other files
    (``-o .`` must not wipe the working directory). On failure the temporary is removed and
    ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.is_symlink() or out_dir.exists():
        if not out_dir.is_dir():
            raise LowbitError(
                f"{out_dir}: exists and is not a directory; expected an output directory"
            )
        entries = [e.name for e in out_dir.iterdir()]
        failed_run = entries == [FAILED_LOGS] and (out_dir / FAILED_LOGS).is_dir()
        if entries and not (out_dir / marker).is_file() and not failed_run:
            raise LowbitError(
                f"{out_dir}: not a lowbit output directory (no {marker}) and not empty; lowbit "
                "replaces its output directory whole: give a new or empty one"
            )
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
        tmp.chmod(umask_mode(directory=True))  # as mkdir() would make it, not mkdtemp's 0700
    except OSError as e:
        raise cannot_write(out_dir, e) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    try:
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    except OSError as e:
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)  # the previous output back in its place
        shutil.rmtree(tmp, ignore_errors=True)
        raise cannot_write(out_dir, e) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def compile_model(
    graph: IntegerGraph,
    out_dir: str | os.PathLike,
    *,
    board: str = "pynq-z2",
    schedule: str | os.PathLike | Schedule | None = None,
    budget: float | None = None,
    target_fps: float | None = None,
    clock_mhz: float | None = None,
) -> CompiledReport:
    """Map ``graph`` onto ``board`` (or apply ``schedule``) and write the Verilog and reports.

    ``out_dir`` receives the files of a :class:`~lowbit.flow.compiled.CompiledDesign`. Returns
    its :class:`~lowbit.flow.compiled.CompiledReport`. A given schedule whose estimated resources
    exceed the board (or ``budget`` of it) is refused with a :class:`LowbitError` naming the layer
    and the resource; nothing is written then. Without a schedule, the folding is searched within
    ``budget``, by default :func:`lowbit.mapping.buildsize.default_budget` (as ``lowbit compile``);
    with ``target_fps`` (images/s at the board's clock) the cheapest folding reaching it instead
    (for a DAG: :func:`dag_max_cycles` of it, the cheapest at exactly that many cycles per image).

    A DAG (:func:`is_dag`: residual joins, depthwise or pooling nodes of issue 19) is folded by
    :func:`lowbit.mapping.dag.map_dag` and built as a :class:`lowbit.hw.dag.top.DagAccelerator`;
    its ``schedule.json`` is the :class:`~lowbit.mapping.dag.DagSchedule` (``"kind": "dag"``) and
    ``mapping`` is :func:`dag_mapping_report`. A given ``schedule`` is refused for a DAG.

    ``clock_mhz`` (``lowbit compile --clock``, FINN's ``synth_clk_period_ns``) is the target
    clock: the schedule's clock becomes it (``target_fps`` is then images/s at it), the folding is
    searched as without it, then each MVTU's and threshold unit's pipeline depth is the smallest
    whose estimated Fmax reaches it (:func:`~lowbit.mapping.timing.pipeline_for_clock`), a given
    schedule's depths included; without ``clock_mhz`` a given schedule keeps its clock and depths.
    On a family without an Fmax model (the Xilinx boards) the depths are left as they are, with a
    logged warning. The report's ``mapping`` has the clock, each unit's depth and estimated Fmax
    (``fmax``) and ``pipeline_depths``: how the depths were chosen. A DAG takes no ``clock_mhz``
    (its units have no pipeline depths).
    """

    if clock_mhz is not None:
        clock_mhz = _check_clock(clock_mhz)
    if is_dag(graph):
        if clock_mhz is not None:
            raise LowbitError(
                f"compile: clock_mhz (--clock) {clock_mhz:g} applies to a chain; this model is a "
                f"DAG (node {graph.dag_nodes()[0].name!r}), whose units have no pipeline depths "
                "(drop --clock)"
            )
        if schedule is not None:
            raise LowbitError(
                "compile: a schedule file applies to a chain; this model is a DAG (node "
                f"{graph.dag_nodes()[0].name!r}), which the mapper folds itself (drop --schedule)"
            )
        max_cycles = None if target_fps is None else dag_max_cycles(board, target_fps)
        return _compile_dag(graph, out_dir, board=board, budget=budget, max_cycles=max_cycles)
    given = schedule
    if schedule is None and target_fps is not None:
        budget = DEFAULT_BUDGET if budget is None else budget
        schedule = search_folding(
            graph, board, target_fps=target_fps, budget=budget, clock_mhz=clock_mhz
        )
    elif schedule is None:
        if budget is None:
            budget = default_budget(get_board(board))
        schedule = search_folding(graph, board, budget=budget, clock_mhz=clock_mhz)
    elif target_fps is not None:
        raise LowbitError(
            "compile: target_fps chooses a folding; it does not apply with a given schedule"
        )
    elif not isinstance(schedule, Schedule):
        schedule = Schedule.load(schedule)
    depths = "not chosen: no target clock" if given is None else "from the schedule"
    if clock_mhz is not None:
        schedule, depths = _depths_for_clock(schedule, graph, clock_mhz)
    specs = schedule.apply(graph)
    try:  # a hand-edited one may not fit; the pipeline registers chosen for a clock add flip-flops
        schedule.check_fits(graph, budget=1.0 if budget is None else budget)
    except LowbitError as e:
        if clock_mhz is None:
            raise
        raise LowbitError(
            f"clock_mhz (--clock) {clock_mhz:g}: with the pipeline depths chosen for it, {e}"
        ) from None
    mapping = mapping_report(graph, schedule)  # what 'lowbit map' reports, energy and placement
    mapping["pipeline_depths"] = depths
    acc = Accelerator(specs)
    # the simulations feed the DDR weight streams from a model of the port
    sim = Accelerator(specs, ddr_bits_per_cycle=ddr_bits_of(schedule)) if acc.streamed else None
    report = _write_design(out_dir, graph, schedule, acc, stream_format(acc), mapping, sim)
    log.info("compiled %d layers into %s", len(specs), out_dir)
    return report


def _check_clock(clock_mhz) -> float:
    """``clock_mhz`` as a float: a finite number of MHz above 0 and at most ``LIMITS.clock_mhz``;
    else a :class:`LowbitError` naming ``clock_mhz``."""
    if (
        isinstance(clock_mhz, bool)
        or not isinstance(clock_mhz, (int, float))
        or not (math.isfinite(clock_mhz) and 0 < clock_mhz <= LIMITS.clock_mhz)
    ):
        raise LowbitError(
            f"clock_mhz must be a number of MHz above 0 and at most {LIMITS.clock_mhz:g}, "
            f"not {clock_mhz!r}"
        )
    return float(clock_mhz)


def _depths_for_clock(
    schedule: Schedule, graph: IntegerGraph, clock_mhz: float
) -> tuple[Schedule, str]:
    """``schedule`` at ``clock_mhz`` with the pipeline depths
    :func:`~lowbit.mapping.timing.pipeline_for_clock` chooses for it, and how they were chosen
    (the report's ``pipeline_depths``); on a family without an Fmax model the depths stay, with a
    logged warning."""
    schedule = dataclasses.replace(schedule, clock_mhz=clock_mhz)
    family = get_board(schedule.board).family
    if fmax_model(family) is None:
        log.warning(
            "clock_mhz (--clock) %g: no Fmax model for %s (board %s): the clock is set, the "
            "pipeline depths are left as they are",
            clock_mhz,
            family,
            schedule.board,
        )
        return schedule, f"unchanged: no Fmax model for {family}"
    chosen = pipeline_for_clock(schedule, graph)
    log.info(
        "pipeline depths for %g MHz: %s",
        clock_mhz,
        ", ".join(f"{layer.name} {layer.pipeline}" for layer in chosen.layers),
    )
    return chosen, "chosen for the clock"


def _write_design(out_dir, graph, schedule, acc, fmt, mapping, sim=None) -> CompiledReport:
    """Write a compiled directory (model, schedule, ``acc``'s Verilog, ``sim``'s when given, and
    the report with the stream format ``fmt``) into ``out_dir``, all or nothing: the one writer of
    chain and DAG designs."""
    with _staged_dir(out_dir, CompiledDesign.REPORT) as tmp:
        design = CompiledDesign(tmp)
        graph.save(design.model_path)
        schedule.save(design.schedule_path)
        sha = write_verilog(acc, design.verilog_path)
        sim_name = sim_sha = None
        if sim is not None:
            sim_name, sim_sha = design.SIM_VERILOG, write_verilog(sim, design.sim_verilog_path)
        report = CompiledReport(
            model=graph.summary(),
            toplevel=TOPLEVEL,
            verilog=design.VERILOG,
            verilog_sha256=sha,
            stream_format=fmt,
            mapping=mapping,
            sim_verilog=sim_name,
            sim_verilog_sha256=sim_sha,
            boundary=graph.boundary(),
        )
        design.write_report(report)
    return report


def is_dag(graph: IntegerGraph) -> bool:
    """True when ``graph`` holds what only the DAG flow maps (:meth:`IntegerGraph.dag_nodes`)."""
    return bool(graph.dag_nodes())


def map_dag_model(
    graph: IntegerGraph,
    board: str = "pynq-z2",
    *,
    budget: float | None = None,
    max_cycles: int | None = None,
) -> DagSchedule:
    """:func:`lowbit.mapping.dag.map_dag` on ``board``: within ``max_cycles`` when given, else the
    fastest folding within ``budget`` of the board (by default
    :func:`lowbit.mapping.buildsize.default_budget`)."""
    b = get_board(board)
    if max_cycles is not None:
        return map_dag(graph, max_cycles=max_cycles)
    return map_dag(graph, board=b, budget=default_budget(b) if budget is None else budget)


def dag_max_cycles(board: str, target_fps: float) -> int:
    """The cycles per image that reach ``target_fps`` images/s at ``board``'s fabric clock (the DAG
    mapper's target; ``lowbit map``/``compile --target-fps`` of a DAG)."""
    mhz = get_board(board).fabric_clock_mhz
    if not target_fps > 0:
        raise LowbitError(f"target_fps must be positive, not {target_fps!r}")
    cycles = math.floor(mhz * 1e6 / target_fps)
    if cycles < 1:
        raise LowbitError(f"--target-fps {target_fps:g} is above the clock ({mhz:g} MHz)")
    return cycles


def dag_mapping_report(graph: IntegerGraph, schedule: DagSchedule, board: str) -> dict:
    """What ``lowbit map`` reports of a DAG's folding: one row per node (PE, SIMD, cycles per image,
    estimated resources), the FIFOs, every unit's cycles (the stitching's forks, FIFOs and
    converters too), the bottleneck, cycles per image and images/s at ``board``'s clock."""
    b = get_board(board)
    specs, fifos = schedule.apply(graph)
    stages = schedule.stage_cycles(graph)
    cycles = max(stages.values())
    bottleneck = max(stages, key=lambda k: stages[k])
    layers = []
    for i, (node, f, spec) in enumerate(zip(graph.nodes, schedule.nodes, specs)):
        layers.append(
            {
                "name": node.name,
                "op": type(node).__name__,
                "inputs": list(graph.inputs_of(i)),
                "pe": f.pe,
                "simd": f.simd,
                "cycles": spec.cycles_per_image(vectors_of(graph, i)),
                "resources": spec.resources().as_dict(),
            }
        )
    return {
        "kind": "dag",
        "board": b.name,
        "clock_mhz": b.fabric_clock_mhz,
        "cycles_per_image": cycles,
        "bottleneck": bottleneck,
        "throughput_fps": b.fabric_clock_mhz * 1e6 / cycles,
        "layers": layers,
        "fifos": [{"node": n, "input": s, "depth": d} for n, s, d in schedule.fifos],
        "units": stages,
        "resources": schedule.resources(graph).as_dict(),
    }


def _compile_dag(
    graph: IntegerGraph,
    out_dir: str | os.PathLike,
    *,
    board: str,
    budget: float | None,
    max_cycles: int | None = None,
) -> CompiledReport:
    """:func:`compile_model` of a DAG: the fastest folding within ``budget``, or the cheapest at
    ``max_cycles``."""
    schedule = map_dag_model(graph, board, budget=budget, max_cycles=max_cycles)
    specs, fifos = schedule.apply(graph)
    mapping = dag_mapping_report(graph, schedule, board)
    acc = DagAccelerator(graph, specs, fifos)
    report = _write_design(out_dir, graph, schedule, acc, dag_stream_format(acc), mapping)
    log.info("compiled the DAG of %d nodes into %s", len(specs), out_dir)
    return report


def ddr_bits_of(schedule: Schedule) -> int | None:
    """Bits per cycle of one DDR weight stream on the schedule's board and clock."""
    return ddr_stream_bits(get_board(schedule.board), schedule.clock_mhz)


def zoo_schedule(
    name: str, graph: IntegerGraph, matmul_folding, board: str = "ultra96-v2"
) -> Schedule:
    """The schedule of a built-in model: its published folding of the matrix products, the other
    nodes folded to match (:func:`lowbit.mapping.schedule.complete_layers`), at ``board``'s
    clock."""

    b = get_board(board)
    return Schedule(
        board=b.name,
        clock_mhz=b.fabric_clock_mhz,
        layers=tuple(complete_layers(graph, matmul_folding)),
    )


def compile_zoo(
    name: str,
    out_dir: str | os.PathLike,
    *,
    board: str = "ultra96-v2",
    seed: int = 0,
    width: float = 1.0,
    search: bool = False,
    budget: float | None = None,
    clock_mhz: float | None = None,
) -> CompiledReport:
    """Compile the built-in model ``name`` (:data:`lowbit.quant.builtin.ZOO`) with random weights
    from ``seed``: with its published folding, or (``search=True``) the mapper's; at
    ``clock_mhz`` as :func:`compile_model`."""

    model = zoo.build(name, seed=seed, width=width)
    schedule = None if search else zoo_schedule(name, model.graph, model.matmul_folding, board)
    report = compile_model(
        model.graph, out_dir, board=board, schedule=schedule, budget=budget, clock_mhz=clock_mhz
    )
    report = dataclasses.replace(
        report,
        zoo={
            "name": model.name,
            "seed": seed,
            "width": width,
            "published_folding": [list(f) for f in model.matmul_folding],
        },
    )
    CompiledDesign(out_dir).write_report(report)
    return report


def load_compiled(out_dir: str | os.PathLike) -> tuple[IntegerGraph, Schedule]:
    """The graph and schedule of a directory written by :func:`compile_model`."""
    return CompiledDesign.open(out_dir).load()


def simulate_compiled(
    out_dir: str | os.PathLike,
    x: np.ndarray,
    *,
    throttled_images: int | None = 100,
    seeds=(1, 2),
    progress: Callable[[str, int, int], None] | None = None,
    simulator: str | None = None,
):
    """Run the cocotb check of a compiled directory on images ``x``.

    The Verilog simulated is the one the directory ships (its ``report.json`` names it and its
    SHA-256), not one elaborated again: what is checked is what would be built, and a large design
    skips its elaboration. A DAG design (issue 19) is simulated the same way, its testbench's time
    limit from the DAG mapper's ``cycles_per_image``. ``simulator`` is ``"verilator"`` or
    ``"icarus"``; ``None`` means ``$SIM``, else Verilator.
    """

    design = CompiledDesign.open(out_dir)
    report = design.report()
    if design.is_dag:  # the shipped Verilog needs no specs; the time limit takes the model's cycles
        graph, specs, predicted = design.graph(), [], report.cycles_per_image
    else:
        graph, schedule = design.load("the cocotb simulation")
        specs, predicted = schedule.apply(graph), None
    runs = default_runs(len(x), throttled_images=throttled_images, seeds=seeds)
    shipped = design.require(report.simulated_verilog)
    want = report.sim_verilog_sha256 if report.sim_verilog else report.verilog_sha256
    sha = hashlib.sha256(shipped.read_bytes()).hexdigest()
    if sha != want:
        raise LowbitError(
            f"{shipped}: changed since 'lowbit compile' (sha256 {sha[:12]}, report.json says "
            f"{str(want)[:12]}); re-run 'lowbit compile'"
        )
    try:
        return simulate(
            graph,
            specs,
            x,
            Path(out_dir) / "sim",
            runs=runs,
            progress=progress,
            simulator=simulator,
            verilog=shipped,
            stream_format=report.stream_format,
            predicted_cycles=predicted,
        )
    except LowbitError as e:
        raise LowbitError(f"{out_dir}: {e}") from None


def verify_compiled_fast(out_dir: str | os.PathLike, x: np.ndarray, *, seeds=(1, 2)):
    """Whole-dataset check of a compiled directory on the fast (compiled Verilator) path."""

    design = CompiledDesign.open(out_dir)
    report = design.report()
    if design.is_dag:  # no cycle prediction of the chain's schedule: measured cycles only
        graph, schedule = design.graph(), None
    else:
        graph, schedule = design.load()
    return verify_fast(
        graph,
        design.require(report.simulated_verilog),
        report.stream_format,
        x,
        patterns=default_patterns(seeds),
        waves_dir=design.root / "waves",
        schedule=schedule,
    )


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(y)))


DEMO_BUDGET = 0.05


def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    *,
    board: str = "pynq-z2",
    epochs: int | None = None,
    budget: float = DEMO_BUDGET,
    throttled_images: int | None = 100,
    step: Progress | None = None,
    epoch_progress: Callable[[int, int, float], None] | None = None,
    sim_progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """The whole flow on the built-in example (scikit-learn digits, fixed split).

    Train a binarized MLP, export the integer graph, map it onto ``board`` within ``budget`` (a
    share of each resource; the demo keeps the design small so that Verilator compiles it in
    seconds), generate Verilog, simulate it under cocotb + Verilator on the whole test split, and
    return the report.
    """

    step = step or (lambda msg: log.info("%s", msg))
    out_dir = Path(out_dir)
    times = {}
    t0 = time.perf_counter()
    data = load_digits_split()
    step(
        f"training a binarized MLP on digits ({len(data.x_train)} train / "
        f"{len(data.x_test)} test images)"
    )
    config = TrainConfig() if epochs is None else TrainConfig(epochs=epochs)
    model = train_binary_mlp(data.x_train, data.y_train, config, progress=epoch_progress)
    times["train_s"] = time.perf_counter() - t0

    step("exporting the integer graph (batch-norm and sign folded into thresholds)")
    graph = model.to_integer_graph()
    pred_float = model.predict(data.x_test)
    pred_ref = graph.predict(data.x_test)
    disagreements = int(np.sum(pred_float != pred_ref))
    if disagreements:
        first = int(np.flatnonzero(pred_float != pred_ref)[0])
        raise LowbitError(
            f"integer graph disagrees with the trained model on {disagreements} test images "
            f"(first: image {first}, float class {pred_float[first]}, "
            f"reference class {pred_ref[first]})"
        )

    step(f"mapping onto {board} and generating Verilog")
    t1 = time.perf_counter()
    compiled = compile_model(graph, out_dir, board=board, budget=budget)
    times["compile_s"] = time.perf_counter() - t1

    step(f"simulating the RTL with cocotb + Verilator on all {len(data.x_test)} test images")
    t2 = time.perf_counter()
    sim = simulate_compiled(
        out_dir, data.x_test, throttled_images=throttled_images, progress=sim_progress
    )
    times["sim_s"] = time.perf_counter() - t2
    times["total_s"] = time.perf_counter() - t0

    mapping = compiled.mapping
    measured = sim.steady["cycles_per_image"]
    predicted = mapping["cycles_per_image"]
    clock_hz = mapping["clock_mhz"] * 1e6
    rtl_labels = np.array(sim.labels, dtype=np.int64)
    report = {
        "example": "scikit-learn digits (8x8, pixels 0..16), stratified 75/25 split, seed 0",
        "board": mapping["board"],
        "budget": budget,
        "clock_mhz": mapping["clock_mhz"],
        "model": graph.summary(),
        "accuracy": {
            "float": _accuracy(pred_float, data.y_test),
            "reference": _accuracy(pred_ref, data.y_test),
            "rtl": _accuracy(rtl_labels, data.y_test)
            if len(rtl_labels) == len(data.y_test)
            else None,
        },
        "test_images": int(len(data.y_test)),
        "float_vs_reference_disagreements": disagreements,
        "mismatches": sim.mismatches,
        "rtl_runs": [{k: v for k, v in r.items() if k != "labels"} for r in sim.runs],
        "cycles_per_image": {
            "measured": measured,
            "predicted": predicted,
            "relative_error": None if measured is None else abs(measured - predicted) / predicted,
        },
        "throughput_fps": None if measured is None else clock_hz / measured,
        "throughput_fps_predicted": mapping["throughput_fps"],
        "latency_cycles_measured": sim.steady["first_output_cycle"],
        "latency_cycles_bound": mapping["latency_cycles"],
        "resources": mapping["resources"],
        "resources_note": "first estimate (formula in lowbit.hw.cost), not synthesis",
        "schedule": [
            {k: layer[k] for k in ("name", "mw", "mh", "pe", "simd", "cycles")}
            for layer in mapping["layers"]
        ],
        "outputs": {
            "dir": str(out_dir),
            "verilog": str(out_dir / compiled.verilog),
            "verilog_sha256": sim.verilog_sha256,
            "waves": sim.waves,
        },
        "times_s": times,
    }
    write_json(out_dir / "demo_report.json", report)
    return report
