"""The Python API: one object per model, in the shape hls4ml users know.

::

    import lowbit

    m = lowbit.load("model.onnx")                 # or a lowbit model file (.npz)
    m.predict(x)                                  # labels (float x: encoded, integer x: codes)
    mapped = m.map(board="pynq-z2", budget=0.7)   # the folding and its predicted costs
    design = m.compile("build", board="pynq-z2", budget=0.7)
    sim = design.simulate(x, y)                   # the RTL on the fast path, against the reference
    built = m.build("out", board="pynq-z2")       # bitstream (open flows) or Vivado plan

Every call returns a typed frozen dataclass and refuses bad input with a
:class:`~lowbit.LowbitError` naming the parameter. The functions behind it are the command line's:
:func:`lowbit.mapping.search_folding`, :func:`lowbit.flow.compile_model`,
:func:`lowbit.flow.verify_compiled_fast` and :func:`lowbit.deploy.build.build`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import LowbitError
from .boards import get_board
from .deploy.build import build as build_design
from .flow import CompiledDesign, CompiledReport, compile_model, verify_compiled_fast
from .ir.boundary import ClassMap, InputQuant
from .ir.datatypes import DataType
from .ir.graph import IntegerGraph
from .ir.inputs import accuracy, check_labels, graph_codes
from .limits import LIMITS, check
from .mapping import DEFAULT_BUDGET, Schedule, search_folding
from .mapping.buildsize import default_budget
from .quant.onnx.importer import import_onnx
from .sim.verify import FastMismatch, FastReport

__all__ = ["BuildResult", "Compiled", "MapResult", "Model", "SimResult", "load", "open_compiled"]

log = logging.getLogger(__name__)

DEFAULT_BOARD = "pynq-z2"


def _board_name(board) -> str:
    """The canonical name of ``board`` (a name or alias); refused naming the parameter."""
    if not isinstance(board, str):
        raise LowbitError(f"board must be a board name such as 'pynq-z2', not {board!r}")
    return get_board(board).name


def _budget(budget) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 1:
        raise LowbitError(
            f"budget must be a fraction in (0, 1] of each resource of the board, not {budget!r}"
        )
    return float(budget)


def _path(value, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise LowbitError(f"{name} must be a path (str or os.PathLike), not {value!r}")
    return Path(value)


def _input_quant(value) -> InputQuant | None:
    if value is None or isinstance(value, InputQuant):
        return value
    if isinstance(value, str):
        try:
            return InputQuant.parse(value)
        except ValueError as e:
            raise LowbitError(f"input_quant: {e}") from None
    raise LowbitError(
        f"input_quant must be an InputQuant or 'TYPE:SCALE[:ZERO_POINT]', not {value!r}"
    )


def load(
    path: str | os.PathLike,
    *,
    input_quant: InputQuant | str | None = None,
    input_dtype: DataType | None = None,
    input_wire: InputQuant | str | None = None,
) -> Model:
    """The model in ``path``: an ONNX, QONNX or QDQ model (``.onnx``) or a lowbit model file.

    Parameters
    ----------
    path : str or os.PathLike
    input_quant : InputQuant or str, optional
        ONNX only: the quantizer of a float input that no quantizer follows (``"UINT8:1/255"``),
        as ``lowbit import --input-quant``.
    input_dtype : DataType, optional
        ONNX only: the data type of a float input that no quantizer follows.
    input_wire : InputQuant or str, optional
        Put an input threshold unit in front: the accelerator takes pixels of this fixed-point
        type (``--input-wire``; :meth:`lowbit.ir.IntegerGraph.with_input_wire`).

    Raises
    ------
    LowbitError
        A missing or unreadable file, or an option that does not apply to it.
    """
    p = _path(path, "path")
    if not p.is_file():
        raise LowbitError(f"{p}: no such model file; expected an .onnx model or a lowbit .npz")
    quant = _input_quant(input_quant)
    wire = None if input_wire is None else _input_quant(input_wire)
    if p.suffix.lower() == ".onnx":
        graph = import_onnx(p, input_dtype=input_dtype, input_quant=quant).graph
        nchw = True
    else:
        for name, value in (("input_quant", quant), ("input_dtype", input_dtype)):
            if value is not None:
                raise LowbitError(
                    f"{name} applies to ONNX models only; {p} is a lowbit model file, which "
                    "stores its input quantizer"
                )
        graph = IntegerGraph.load(p)
        nchw = False
    if wire is not None:
        graph = graph.with_input_wire(wire)
    return Model(graph, str(p), nchw=nchw, file=p if wire is None and not nchw else None)


def open_compiled(out_dir: str | os.PathLike) -> Compiled:
    """A directory written by :meth:`Model.compile` or ``lowbit compile``."""
    design = CompiledDesign.open(_path(out_dir, "out_dir").resolve())
    graph = design.graph()  # a chain's or a DAG's (issue 19)
    return Compiled(
        Model(graph, str(design.model_path), file=design.model_path), design, design.report()
    )


@dataclass(frozen=True, eq=False)
class Model:
    """A low-bit model as lowbit's typed integer graph, and the steps from it to hardware.

    Attributes
    ----------
    graph : IntegerGraph
    source : str
        Where it was loaded from.
    nchw : bool
        Float or integer images may also come in ONNX's ``(B, C, H, W)`` layout.
    file : Path or None
        The lowbit model file holding exactly this graph, when there is one.
    """

    graph: IntegerGraph
    source: str = "<graph>"
    nchw: bool = False
    file: Path | None = None

    def codes(self, x) -> np.ndarray:
        """The graph's input codes for ``x``: integer ``x`` are codes (checked against the input
        type), float ``x`` are encoded by the graph's input quantizer."""
        x = np.asarray(x)
        if x.ndim >= 1:
            check("x", "images", len(x), LIMITS.images)
        return graph_codes(self.graph, x, "x", nchw=self.nchw)

    def trace(self, x) -> tuple[np.ndarray, ...]:
        """Every node's integer output for ``x``, in order (the last one is the scores)."""
        return tuple(self.graph.trace(self.codes(x)))

    def scores(self, x) -> np.ndarray:
        """The last node's integer scores ``(B, classes)``."""
        return self.graph.scores(self.codes(x))

    def predict(self, x) -> np.ndarray:
        """The class labels ``(B,)`` (through the last node's class map when it has one), as the
        hardware decides them."""
        return self.graph.predict(self.codes(x))

    @property
    def class_map(self) -> ClassMap | None:
        """The last node's exact class map (the model's per-class scale and bias as integers),
        or ``None`` when the integer scores decide as they are."""
        return self.graph.nodes[-1].class_map

    def class_scores(self, x) -> np.ndarray:
        """The values the class decision is the argmax of: :meth:`scores` through
        :attr:`class_map` (``mult[c] * s + offset[c]``, exact integers), or the scores themselves.
        They are the source model's scores up to one positive factor and one offset."""
        s = self.scores(x)
        cm = self.class_map
        return s if cm is None else cm.apply(s)

    def map(
        self,
        board: str = DEFAULT_BOARD,
        budget: float | None = None,
        *,
        target_fps: float | None = None,
        act_density: float | None = 0.5,
    ) -> MapResult:
        """Search a folding on ``board`` within ``budget`` (a share of each resource), as
        ``lowbit map``: the fastest that fits, or with ``target_fps`` the cheapest meeting it.
        The default budget is ``lowbit map``'s: :func:`lowbit.mapping.buildsize.default_budget`
        (0.7; on open-flow boards the share holding 5,000 LUT6-eq), or 0.7 with ``target_fps``."""
        name = _board_name(board)
        if self.graph.dag_nodes():
            raise LowbitError(
                f"Model.map: the model is a DAG (node {self.graph.dag_nodes()[0].name!r}); map "
                "searches chain foldings only yet: Model.compile(out_dir, target_fps=...) folds a "
                "DAG, and 'lowbit map MODEL' reports that folding"
            )
        if budget is None:
            budget = DEFAULT_BUDGET if target_fps is not None else default_budget(get_board(name))
        schedule = search_folding(
            self.graph,
            name,
            budget=_budget(budget),
            target_fps=target_fps,
            act_density=act_density,
        )
        return MapResult(schedule, schedule.report(self.graph))

    def compile(
        self,
        out_dir: str | os.PathLike,
        *,
        board: str | None = None,
        budget: float | None = None,
        schedule: Schedule | MapResult | str | os.PathLike | None = None,
        target_fps: float | None = None,
        clock_mhz: float | None = None,
    ) -> Compiled:
        """Map (or apply ``schedule``) and write the Verilog and reports into ``out_dir``, as
        ``lowbit compile``. A schedule fixes the board: ``board`` may only repeat it, and
        ``budget`` is then the share of the board it must fit in. ``target_fps`` (images/s at the
        clock) asks for the cheapest folding reaching it instead of the fastest, as
        ``lowbit compile --target-fps``; a DAG model (residual, depthwise, 1-D) takes it, not a
        schedule. ``clock_mhz`` is the target clock, as ``lowbit compile --clock``: the
        schedule's clock becomes it and each unit's pipeline depth is chosen for it (a given
        schedule's depths too; on a family without an Fmax model only the clock is set); not
        for a DAG (:func:`lowbit.flow.compile_model`)."""
        out = _path(out_dir, "out_dir")
        if budget is not None:
            budget = _budget(budget)
        if isinstance(schedule, MapResult):
            schedule = schedule.schedule
        elif schedule is not None and not isinstance(schedule, Schedule):
            schedule = Schedule.load(_path(schedule, "schedule"))
        if schedule is None:
            name = _board_name(DEFAULT_BOARD if board is None else board)
        else:
            name = get_board(schedule.board).name
            if board is not None and _board_name(board) != name:
                raise LowbitError(
                    f"board {board!r}: the schedule was made for {name}; leave board out to "
                    f"compile for {name}, or map the model again with board={board!r}"
                )
        if target_fps is not None and (schedule is not None or budget is not None):
            raise LowbitError(
                "target_fps chooses the folding; give it without schedule and budget"
            )
        report = compile_model(
            self.graph,
            out,
            board=name,
            schedule=schedule,
            budget=budget,
            target_fps=target_fps,
            clock_mhz=clock_mhz,
        )
        return Compiled(self, CompiledDesign(out.resolve()), report)

    def build(
        self,
        out_dir: str | os.PathLike,
        *,
        board: str = DEFAULT_BOARD,
        budget: float | None = None,
        clock_mhz: float | None = None,
        run: bool = False,
    ) -> BuildResult:
        """Map, compile and build for ``board`` into ``out_dir``, as ``lowbit build``: a
        bitstream on open-flow boards, a Vivado plan (run with ``run=True``) on Zynq boards."""
        out = _path(out_dir, "out_dir")
        name = _board_name(board)
        if budget is not None:
            budget = _budget(budget)
        if self.file is not None:
            return _build(self.file, name, out, budget, clock_mhz, run)
        with tempfile.TemporaryDirectory(prefix="lowbit-api-") as tmp:
            return _build(
                self.graph.save(Path(tmp) / "model.npz"), name, out, budget, clock_mhz, run
            )


def _build(source: Path, board: str, out: Path, budget, clock_mhz, run: bool) -> BuildResult:
    manifest = build_design(source, board, out, run=run, budget=budget, clock_mhz=clock_mhz)
    out = out.resolve()
    return BuildResult(out, out / "build.json", manifest)


@dataclass(frozen=True, eq=False)
class MapResult:
    """A folding of a model on a board and its predicted costs (:meth:`Schedule.report`)."""

    schedule: Schedule
    report: dict

    @property
    def board(self) -> str:
        return self.report["board"]

    @property
    def clock_mhz(self) -> float:
        return self.report["clock_mhz"]

    @property
    def cycles_per_image(self) -> int:
        """The bottleneck's cycles per image: what the Verilog does and simulation measures."""
        return self.report["cycles_per_image"]

    @property
    def images_per_second(self) -> float:
        """Images per second at the clock."""
        return self.report["throughput_fps"]

    @property
    def bottleneck(self) -> str:
        return self.report["bottleneck"]

    @property
    def resources(self) -> dict:
        """Estimated resources per kind: ``{"used", "available", "fraction"}``."""
        return self.report["resources"]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the schedule (JSON; ``lowbit compile --schedule`` and :meth:`Model.compile`
        take it)."""
        return self.schedule.save(_path(path, "path"))


@dataclass(frozen=True, eq=False)
class Compiled:
    """A compiled design: its directory (:class:`~lowbit.flow.CompiledDesign`) and report."""

    model: Model
    design: CompiledDesign
    report: CompiledReport

    @property
    def dir(self) -> Path:
        return self.design.root

    @property
    def verilog(self) -> Path:
        return self.design.root / self.report.verilog

    @property
    def cycles_per_image(self) -> int:
        """The mapper's predicted cycles per image."""
        return self.report.cycles_per_image

    def simulate(self, x, y=None) -> SimResult:
        """Run ``x`` through the RTL on the fast path (a Verilated model, back to back and under
        two random handshake patterns) and compare every score and label with the reference, as
        ``lowbit sim --fast``; with labels ``y`` also the reference's and the RTL's accuracy."""
        codes = self.model.codes(x)
        if len(codes) == 0:
            raise LowbitError("x: no images to simulate; a check on zero images proves nothing")
        labels = None
        if y is not None:
            labels = np.asarray(y)
            if labels.dtype.kind not in "iu" or labels.shape != (len(codes),):
                raise LowbitError(
                    f"y must hold one integer label per image, shape ({len(codes)},), not "
                    f"{labels.dtype} {labels.shape}"
                )
            labels = labels.astype(np.int64)
            check_labels(labels, self.model.graph.classes, "y")
        rep = verify_compiled_fast(self.dir, codes)
        ref = self.model.graph.predict(codes)
        rtl = np.asarray(rep.labels)
        label_mismatches = int(np.sum(rtl != ref)) if len(rtl) == len(ref) else None
        c = rep.cycles
        return SimResult(
            images=len(codes),
            bit_exact=rep.ok and label_mismatches == 0,
            mismatch=rep.mismatch,
            label_mismatches=label_mismatches,
            cycles_per_image_measured=rep.cycles_per_image,
            cycles_per_image_predicted=self.cycles_per_image if c is None else c.estimate,
            cycles_per_image_exact=None if c is None else c.exact,
            cycles_equal=None if c is None else c.equal,
            accuracy_reference=None if labels is None else accuracy(ref, labels),
            accuracy_rtl=None
            if labels is None or label_mismatches is None
            else accuracy(rtl, labels),
            labels=rtl,
            reference_labels=ref,
            fast=rep,
        )

    def build(
        self,
        out_dir: str | os.PathLike,
        *,
        board: str | None = None,
        clock_mhz: float | None = None,
        run: bool = False,
    ) -> BuildResult:
        """Build this design for ``board`` (by default the one it was compiled for)."""
        if board is not None:
            target = _board_name(board)
        elif self.design.is_dag:  # a DAG's schedule holds no board; its mapping report does
            target = get_board(self.report.mapping["board"]).name
        else:
            target = get_board(self.design.load()[1].board).name
        return _build(self.dir, target, _path(out_dir, "out_dir"), None, clock_mhz, run)


@dataclass(frozen=True, eq=False)
class SimResult:
    """The RTL against the reference on a batch of images (:meth:`Compiled.simulate`).

    Attributes
    ----------
    bit_exact : bool
        Every score and label of every run equals the reference's, no run timed out, and the
        measured cycles agree with the prediction where that is exact.
    mismatch : FastMismatch or None
        The first differing element (run, image, layer output, index, both values).
    label_mismatches : int or None
        Images whose RTL label differs from the reference's class decision.
    cycles_per_image_measured : float or None
        The steady run's cycles per image (``None`` with fewer than three images).
    cycles_per_image_predicted : int
        The schedule's cycles per image.
    cycles_per_image_exact : float or None
        With a sparse-engine layer: the exact data-driven prediction.
    cycles_equal : bool or None
        Whether the measured output cycles equal the exact prediction (``None``: no exact one).
    accuracy_reference, accuracy_rtl : float or None
        With labels: the shares of the reference's and of the RTL's labels equal to them.
    labels, reference_labels : ndarray
        The RTL's (steady run) and the reference's class labels.
    fast : FastReport
        The whole report of :func:`lowbit.sim.verify.verify_fast`.
    """

    images: int
    bit_exact: bool
    mismatch: FastMismatch | None
    label_mismatches: int | None
    cycles_per_image_measured: float | None
    cycles_per_image_predicted: int
    cycles_per_image_exact: float | None
    cycles_equal: bool | None
    accuracy_reference: float | None
    accuracy_rtl: float | None
    labels: np.ndarray = field(repr=False)
    reference_labels: np.ndarray = field(repr=False)
    fast: FastReport = field(repr=False)


@dataclass(frozen=True, eq=False)
class BuildResult:
    """A build directory (:func:`lowbit.deploy.build.build`) and its ``build.json`` manifest."""

    dir: Path
    manifest_path: Path
    manifest: dict

    @property
    def flow(self) -> str:
        """``"open"`` (a bitstream) or the Vivado flow."""
        return self.manifest["flow"]

    @property
    def bitstream(self) -> Path | None:
        name = self.manifest.get("bitstream")
        return None if name is None else self.dir / name
