"""``lowbit build``: from a model or a compiled directory to a board's build output.

* Open-flow boards (iCE40, ECP5): a real bitstream from yosys + nextpnr + the packer, with the
  accelerator's streams over the board's UART (:mod:`lowbit.deploy.openflow`).
* Zynq boards (PS7, ZynqMP): a complete Vivado plan (:mod:`lowbit.deploy.vivado`); with
  ``run=True`` and ``vivado`` on ``PATH`` it is executed.

The output directory is written to a temporary sibling and renamed into place. It always holds
``build.json`` (board, part, flow, bitstream name, clock, the predicted images/s bounded by the
shell's (``throughput``), and for open flows utilisation, Fmax, the tools' times
(``tool_seconds``), the build-size estimate made before they ran (``build_estimate``) and the
mapper's estimate beside the tools' counts (``estimate_vs_tool``): :mod:`lowbit.deploy.estimate`)
and ``compiled/`` (the ``lowbit compile`` output it was built from).

**Build size.** An open-flow build of a large design can take hours (yosys's ABC9 step grows
faster than the design). Before the tools start, :func:`check_build_size` estimates the build's
time and memory from the mapper's LUT estimate (:mod:`lowbit.mapping.buildsize`, calibrated on
real builds), warns above :data:`WARN_BUILD_S` and refuses a design estimated to take longer than
the timeout. A model is mapped with :func:`~lowbit.mapping.buildsize.default_budget` when no
budget is given: on the open-flow boards a share holding about
:data:`~lowbit.mapping.buildsize.OPEN_FLOW_LUT6` LUT6 equivalents.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import LowbitError
from .._io import umask_mode
from ..boards.records import Board, get_board
from ..flow import CompiledDesign, compile_model, write_json
from ..flow.steps import FAILED_LOGS, _staged_dir, dag_mapping_report, map_dag_model
from ..hw.axi.shells import payload_bits
from ..hw.axi.wfetch import pack_image
from ..hw.mvtu.spec import streams_weights
from ..ir.files import confine_tree
from ..ir.graph import IntegerGraph
from ..mapping import search_folding
from ..mapping.buildsize import BuildEstimate, default_budget, design_size, estimate_build
from ..mapping.dag import DagSchedule
from ..mapping.schedule import output_stream_cycles
from ..tools.fpga import run_vivado_build, vivado_available
from .driver import driver_config, driver_files
from .estimate import dma_throughput
from .openflow import build_open_flow, fabric_pll
from .plancheck import check_vivado_plan
from .vivado import WeightPort, check_clock_mhz, vivado_plan_files, weight_port_address_bits

__all__ = ["build", "weight_ports", "check_build_size", "WARN_BUILD_S"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3600.0
"""Seconds each open-flow tool may run by default (``lowbit build --timeout``)."""

MAX_TIMEOUT_S = 7 * 24 * 3600.0
"""The longest timeout accepted: a week."""

WARN_BUILD_S = 600.0
"""An open-flow build estimated longer than this (seconds) is warned about."""


def _compiled(
    source: Path,
    board: Board,
    tmp: Path,
    budget: float | None,
    check_size: Callable[[dict], None],
) -> CompiledDesign:
    """The compiled directory for ``source``: copied when it is one, compiled into ``tmp`` from a
    model (mapped within ``budget``, by default
    :func:`~lowbit.mapping.buildsize.default_budget`). ``check_size`` is given the mapping report
    before anything is generated."""

    dest = tmp / "compiled"
    if source.is_dir():
        confine_tree(source, "compiled directory")  # read and copied with links followed
        design = CompiledDesign.open(source)
        if design.is_dag:  # the DAG mapper's report names its board
            compiled_for = str(design.report().mapping.get("board"))
        else:
            compiled_for = design.load()[1].board
        if get_board(compiled_for).part != board.part:
            raise LowbitError(
                f"{source} was compiled for {compiled_for}, not {board.name}; "
                f"compile it again with --board {board.name}"
            )
        design.require(design.VERILOG)
        check_size(_utilisation(design.report().mapping, board))
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("sim", "sim_*", "__pycache__"))
        return CompiledDesign(dest)
    if not source.is_file():
        raise LowbitError(f"{source}: no such model file or compiled directory")
    graph = IntegerGraph.load(source)
    budget = default_budget(board) if budget is None else budget
    if graph.dag_nodes():  # issue 19: compile_model maps it with the DAG mapper (the same folding)
        mapping = dag_mapping_report(
            graph, map_dag_model(graph, board.name, budget=budget), board.name
        )
        check_size(_utilisation(mapping, board))
        compile_model(graph, dest, board=board.name, budget=budget)
        return CompiledDesign(dest)
    schedule = search_folding(graph, board, budget=budget)
    check_size(schedule.report(graph, board=board))
    compile_model(graph, dest, board=board.name, schedule=schedule, budget=budget)
    return CompiledDesign(dest)


def _utilisation(mapping: Mapping, board: Board) -> dict:
    """``mapping`` with its ``resources`` as a chain's report gives them (``used``, ``available``,
    ``fraction`` of ``board``'s): a DAG's (:func:`lowbit.flow.steps.dag_mapping_report`) gives the
    used counts only. A chain's is returned as it is."""
    res = mapping.get("resources")
    if not isinstance(res, dict) or all(isinstance(v, dict) for v in res.values()):
        return dict(mapping)
    capacity = board.capacity()
    out = {}
    for kind, used in res.items():
        available = getattr(capacity, kind)
        fraction = used / available if available else (0.0 if not used else math.inf)
        out[kind] = {"used": used, "available": available, "fraction": fraction}
    return {**mapping, "resources": out}


def _dag_mapping(
    graph: IntegerGraph, schedule: DagSchedule, mapping: Mapping, board: Board, stream
) -> dict:
    """What the build reads of a chain's mapping report, for a DAG design: the resources
    (:func:`_utilisation`) and the image's and the scores' cycles through the board's AXI-HP port
    (``input_stream_cycles``: the top's input stream, ``stream``; ``output_stream_cycles``: the last
    node's unit)."""
    port = board.axi_hp_width_bits
    per_cycle = stream.simd * stream.in_bits
    per_cycle = per_cycle if port is None else min(per_cycle, port)
    specs, _ = schedule.apply(graph)
    return {
        **_utilisation(mapping, board),
        "input_stream_cycles": math.ceil(stream.input_size * stream.in_bits / per_cycle),
        "output_stream_cycles": output_stream_cycles(specs[-1], port),
    }


def check_build_size(
    mapping: Mapping, board: Board, *, timeout: float, budget: float | None = None
) -> BuildEstimate:
    """The estimated open-flow build of a design (:func:`lowbit.mapping.buildsize.estimate_build`
    of its mapping report), logged, with a warning above :data:`WARN_BUILD_S`.

    Raises
    ------
    LowbitError
        If the estimate exceeds ``timeout`` (the build would run out of time), naming ``--budget``
        (``budget``: the one the design was mapped with, ``None`` for a compiled directory) and
        ``--timeout``.
    """
    est = estimate_build(design_size(mapping), board.family)
    logger.info("open-flow build of %s LUT6-eq: %s", f"{est.lut:,.0f}", est.summary())
    if est.seconds > timeout:
        smaller = (
            "compile it with a smaller --budget"
            if budget is None
            else f"map it with a smaller --budget (this one {budget:g})"
        )
        raise LowbitError(
            f"the open flow on {board.name} is estimated at {est.summary()} for this design "
            f"({est.lut:,.0f} LUT6-eq), more than --timeout {timeout:g} s\n"
            f"{smaller} or allow more time with --timeout"
        )
    if est.seconds > WARN_BUILD_S:
        logger.warning(
            "a long build: the open flow is estimated at %s; a smaller --budget builds sooner",
            est.summary(),
        )
    return est


def weight_ports(
    board: Board, graph, schedule, *, outstanding: int = 8
) -> tuple[list, list[bytes]]:
    """The weight ports of ``schedule``'s DDR layers on ``board`` and their DDR images
    (:func:`lowbit.hw.axi.wfetch.pack_image` of each layer's weight words); each fetcher keeps
    ``outstanding`` bursts in flight."""

    ports: list[WeightPort] = []
    images: list[bytes] = []
    for unit, spec in enumerate(schedule.apply(graph)):
        if not streams_weights(spec):
            continue
        if board.axi_hp_width_bits is None:
            raise LowbitError(
                f"{board.name}: no AXI-HP port width recorded, needed to stream the weights of "
                "a layer from DDR"
            )
        words = spec.weight_image()
        port = WeightPort(
            index=len(ports),
            unit=unit,
            word_bits=spec.weight_word_bits,
            words=len(words),
            data_bits=board.axi_hp_width_bits,
            addr_bits=weight_port_address_bits(board),
            outstanding=outstanding,
            layer=spec.node.name,
        )
        ports.append(port)
        images.append(pack_image(words, port.word_bits, port.data_bits))
    return ports, images


def build(
    source: str | os.PathLike,
    board: str | Board,
    out: str | os.PathLike,
    *,
    run: bool = False,
    budget: float | None = None,
    clock_mhz: float | None = None,
    fetch_outstanding: int = 8,
    timeout: float = DEFAULT_TIMEOUT_S,
    on_estimate: Callable[[BuildEstimate], None] | None = None,
) -> dict:
    """Build ``source`` (a model ``.npz`` or a ``lowbit compile`` directory) for ``board`` into
    ``out``.

    Parameters
    ----------
    budget : float, optional
        Share of each resource the mapper may use when ``source`` is a model; by default
        :func:`~lowbit.mapping.buildsize.default_budget` (smaller on the large open-flow boards,
        so that they build in minutes).
    clock_mhz : float, optional
        Fabric clock; by default the schedule's. Either must be finite, above 0 and at most
        ``LIMITS.clock_mhz`` (:func:`lowbit.deploy.vivado.check_clock_mhz`).
    run : bool
        Zynq boards: run the Vivado plan (needs ``vivado`` on ``PATH``).
    fetch_outstanding : int
        Bursts each weight fetcher keeps in flight (layers whose weights stream from DDR).
    timeout : float
        Open flow: seconds each tool (yosys, nextpnr, the packer) may run. A tool that fails or
        runs out of time leaves its logs in ``out/logs/`` (nothing else is written there; the next
        build into ``out`` replaces it) and the message names them with the tool's ERROR line.
        Before the tools start, the build's time is estimated from the design's size
        (:func:`check_build_size`); a design estimated to take longer is refused.
    on_estimate : callable, optional
        Open flow: called with the :class:`~lowbit.mapping.buildsize.BuildEstimate` before the
        tools start (the CLI prints it).

    Returns
    -------
    dict
        The ``build.json`` manifest.
    """

    board = get_board(board)
    source, out = Path(source), Path(out)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise LowbitError(
            f"timeout must be a number of seconds in (0, {MAX_TIMEOUT_S}], not {timeout!r}"
        )
    if clock_mhz is not None:
        clock_mhz = check_clock_mhz(clock_mhz, "clock_mhz")
    if not board.has_ps and not board.is_open_flow:
        raise LowbitError(f"board {board.name!r}: no build flow for family {board.family!r}")
    if run and board.has_ps and vivado_available() is None:
        raise LowbitError(
            "--run needs vivado on PATH; without it, copy the output directory to a machine "
            "with Vivado and run 'sh build.sh' there"
        )
    estimates: list[BuildEstimate] = []

    def check_size(mapping: Mapping) -> None:
        if board.is_open_flow:
            est = check_build_size(
                mapping,
                board,
                timeout=timeout,
                budget=None if source.is_dir() else (budget or default_budget(board)),
            )
            estimates.append(est)
            if on_estimate is not None:
                on_estimate(est)

    with _staged_dir(out, "build.json") as tmp:
        compiled = _compiled(source, board, tmp, budget, check_size)
        report = compiled.report()
        stream = report.stream_format  # the accelerator's port widths
        if compiled.is_dag:  # issue 19: no DDR layers, the clock of the mapping report
            graph, dag = compiled.load_dag()
            schedule = None
            mapping = _dag_mapping(graph, dag, report.mapping, board, stream)
            schedule_clock: float = mapping.get("clock_mhz", board.fabric_clock_mhz)
        else:
            graph, schedule = compiled.load()
            mapping, schedule_clock = report.mapping, schedule.clock_mhz
        if schedule is not None and schedule.ddr_layers and not board.has_ps:
            raise LowbitError(
                f"{source}: layer(s) {', '.join(map(repr, schedule.ddr_layers))} stream their "
                f"weights from DDR, but board {board.name!r} has no DDR; keep the weights on chip "
                '("weights": "onchip" in the schedule)'
            )
        clock = (
            clock_mhz
            if clock_mhz is not None
            else check_clock_mhz(schedule_clock, f"{source}: the schedule's clock_mhz")
        )
        if board.is_open_flow:  # a clock the shell's PLL cannot make is refused before the tools
            fabric_pll(board, clock)
        verilog = compiled.require(report.verilog).read_text()
        manifest = {
            "board": board.name,
            "part": board.part,
            "family": board.family,
            "ps": board.ps,
            "source": str(source),
            "cycles_per_image": report.cycles_per_image,
        }
        if not board.has_ps:
            manifest["build_estimate"] = dataclasses.asdict(estimates[0])
            manifest.update(
                build_open_flow(
                    board,
                    verilog,
                    tmp,
                    stream_format=stream,
                    mapping=mapping,
                    clock_mhz=clock,
                    timeout=timeout,
                    keep=out.resolve() / FAILED_LOGS,
                )
            )
        else:
            in_bits, out_bits = payload_bits(stream)
            ports, images = (
                ([], [])
                if schedule is None
                else weight_ports(board, graph, schedule, outstanding=fetch_outstanding)
            )
            files, summary = vivado_plan_files(
                board,
                verilog,
                clock_mhz=clock,
                in_bits=in_bits,
                out_bits=out_bits,
                beats_per_image=stream.beats_per_image,
                weight_ports=ports,
            )
            quant = graph.input_quant
            driver = driver_files(
                driver_config(
                    stream.to_dict(),
                    summary["axis"],
                    clock_mhz=clock,
                    predicted_cycles=report.cycles_per_image,
                    input_dtype=graph.input_dtype,
                    input_quant=None if quant is None else quant.to_json(),
                    class_map=graph.boundary()["class_map"],
                    weight_ports=summary["weight_ports"],
                ),
                images,
            )
            for name, data in {**files, **driver}.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                if isinstance(data, bytes):
                    (tmp / name).write_bytes(data)
                else:
                    (tmp / name).write_text(data)
            (tmp / "build.sh").chmod(umask_mode(executable=True))
            manifest.update(summary)
            manifest["throughput"] = dma_throughput(clock, mapping, board.axi_hp_width_bits)
            if shutil.which("tclsh"):
                manifest["plan_check"] = check_vivado_plan(tmp)
            else:
                manifest["plan_check"] = "not run: no tclsh on PATH"
            manifest["files"] = sorted(files)
            manifest["driver"] = sorted(driver)
        write_json(tmp / "build.json", manifest)
    if run and board.has_ps:
        run_vivado_build(out)
    logger.info("built %s for %s in %s", source, board.name, out)
    return manifest
