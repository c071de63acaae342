"""The compiled-design directory as a typed artefact: its file names in one place and its report as
a dataclass, so no module spells ``lowbit_top.v`` or reads ``report.json`` by key.

``lowbit compile`` (:func:`lowbit.flow.compile_model`) writes, in one directory:

========================  =======================================================================
``model.npz``             the integer graph (:meth:`lowbit.ir.IntegerGraph.save`)
``schedule.json``         the folding (:class:`lowbit.mapping.Schedule`; edit it and compile again;
                          of a DAG, :class:`lowbit.mapping.dag.DagSchedule`, ``"kind": "dag"``)
``lowbit_top.v``          the accelerator's Verilog (top module ``lowbit_top``)
``lowbit_sim_top.v``      only when weights stream from DDR: the same with DDR models, to simulate
``report.json``           :class:`CompiledReport`
========================  =======================================================================
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import LowbitError
from .._io import atomic_write
from ..hw.codec import StreamFormat
from ..hw.verilog import TOPLEVEL
from ..ir.files import confine, read_json
from ..ir.graph import IntegerGraph
from ..mapping.dag import DagSchedule
from ..mapping.schedule import Schedule

__all__ = ["CompiledDesign", "CompiledReport", "write_json"]


@dataclass(frozen=True)
class CompiledReport:
    """What ``report.json`` holds.

    Attributes
    ----------
    model : list
        The graph's layer summary (:meth:`lowbit.ir.IntegerGraph.summary`).
    toplevel, verilog, verilog_sha256 : str
        Top module, file name and SHA-256 of the accelerator's Verilog.
    stream_format : StreamFormat
        The bit layout of the accelerator's ports.
    mapping : dict
        :meth:`lowbit.mapping.Schedule.report` of the schedule on its board.
    sim_verilog, sim_verilog_sha256 : str or None
        The simulation top with DDR models, when weights stream from DDR.
    zoo : dict or None
        For a built-in model: its name, seed, width and published folding.
    boundary : dict or None
        Where the graph meets floats (:meth:`lowbit.ir.IntegerGraph.boundary`): ``input_dtype``,
        ``input_quant`` and ``class_map``, stored as top-level keys of ``report.json``.
    """

    model: list
    toplevel: str
    verilog: str
    verilog_sha256: str
    stream_format: StreamFormat
    mapping: dict
    sim_verilog: str | None = None
    sim_verilog_sha256: str | None = None
    zoo: dict | None = field(default=None)
    boundary: dict | None = field(default=None)

    @property
    def cycles_per_image(self) -> int:
        """The mapper's predicted cycles per image (the bottleneck)."""
        return self.mapping["cycles_per_image"]

    @property
    def simulated_verilog(self) -> str:
        """The file to simulate: the DDR-model top when there is one, else the accelerator."""
        return self.sim_verilog or self.verilog

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "toplevel": self.toplevel,
            "verilog": self.verilog,
            "verilog_sha256": self.verilog_sha256,
            "stream_format": self.stream_format.to_dict(),
            "mapping": self.mapping,
        }
        if self.sim_verilog is not None:
            out["sim_verilog"] = self.sim_verilog
            out["sim_verilog_sha256"] = self.sim_verilog_sha256
        if self.zoo is not None:
            out["zoo"] = self.zoo
        if self.boundary is not None:
            out.update(self.boundary)
        return out

    @classmethod
    def from_dict(cls, doc, source: str = "report.json") -> "CompiledReport":
        """Parse and check a report; errors name ``source`` and the key."""
        if not isinstance(doc, dict):
            raise LowbitError(f"{source}: expected a JSON object, not {type(doc).__name__}")
        types = {
            "model": list,
            "toplevel": str,
            "verilog": str,
            "verilog_sha256": str,
            "stream_format": dict,
            "mapping": dict,
        }
        for key, kind in types.items():
            if not isinstance(doc.get(key), kind):
                raise LowbitError(
                    f"{source}: key {key!r} must be a JSON {kind.__name__}, "
                    f"not {type(doc.get(key)).__name__}"
                )
        for key in ("sim_verilog", "sim_verilog_sha256"):
            if key in doc and not isinstance(doc[key], str):
                raise LowbitError(f"{source}: key {key!r} must be a string")
        if doc.get("zoo") is not None and not isinstance(doc["zoo"], dict):
            raise LowbitError(
                f"{source}: key 'zoo' must be a JSON object, not {type(doc['zoo']).__name__}"
            )
        cycles = doc["mapping"].get("cycles_per_image")
        if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 1:
            raise LowbitError(
                f"{source}: key 'mapping.cycles_per_image' must be a positive integer, not "
                f"{cycles!r}"
            )
        try:
            fmt = StreamFormat(**doc["stream_format"])
        except (TypeError, ValueError) as e:
            raise LowbitError(f"{source}: key 'stream_format': {e}") from None
        for key in ("verilog", "sim_verilog"):
            name = doc.get(key)
            if name is not None and (Path(name).name != name or name in (".", "..")):
                raise LowbitError(
                    f"{source}: key {key!r} must name a file in the directory, not {name!r}"
                )
        return cls(
            model=doc["model"],
            toplevel=doc["toplevel"],
            verilog=doc["verilog"],
            verilog_sha256=doc["verilog_sha256"],
            stream_format=fmt,
            mapping=doc["mapping"],
            sim_verilog=doc.get("sim_verilog"),
            sim_verilog_sha256=doc.get("sim_verilog_sha256"),
            zoo=doc.get("zoo"),
            boundary=_boundary(doc, source),
        )


_BOUNDARY = ("input_dtype", "input_quant", "class_map")


def _boundary(doc: dict, source: str) -> dict | None:
    """The graph's boundary keys of a report (written since session 7; ``None`` before)."""
    if "input_dtype" not in doc:
        return None
    for key, kind in zip(_BOUNDARY, (str, dict, dict)):
        v = doc.get(key)
        if not (isinstance(v, kind) or (v is None and key != "input_dtype")):
            raise LowbitError(f"{source}: key {key!r} must be a JSON {kind.__name__} or null")
    return {key: doc.get(key) for key in _BOUNDARY}


class CompiledDesign:
    """A directory written by ``lowbit compile``: the names of its files and typed access to them.

    ``CompiledDesign(root)`` names the files (for writing); :meth:`open` also checks that ``root``
    is a compiled directory.
    """

    MODEL = "model.npz"
    SCHEDULE = "schedule.json"
    VERILOG = f"{TOPLEVEL}.v"
    SIM_VERILOG = "lowbit_sim_top.v"
    REPORT = "report.json"
    EXPECTED = "expected the output of 'lowbit compile'"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"CompiledDesign({str(self.root)!r})"

    @classmethod
    def open(cls, root: str | os.PathLike) -> "CompiledDesign":
        """The compiled directory ``root``; refused unless it holds the model and the schedule."""
        design = cls(root)
        if not design.root.is_dir():
            raise LowbitError(f"{design.root}: no such directory; {cls.EXPECTED}")
        for name in (cls.MODEL, cls.SCHEDULE):
            design.require(name)
        return design

    def require(self, name: str) -> Path:
        """The path of file ``name`` in the directory; refused when it is missing, or when it (a
        link) resolves outside the directory."""
        path = self.root / name
        if not path.is_file():
            raise LowbitError(f"{self.root}: missing {name}; {self.EXPECTED}")
        return confine(self.root, name)

    @property
    def model_path(self) -> Path:
        return self.root / self.MODEL

    @property
    def schedule_path(self) -> Path:
        return self.root / self.SCHEDULE

    @property
    def verilog_path(self) -> Path:
        return self.root / self.VERILOG

    @property
    def sim_verilog_path(self) -> Path:
        return self.root / self.SIM_VERILOG

    @property
    def report_path(self) -> Path:
        return self.root / self.REPORT

    @property
    def is_dag(self) -> bool:
        """True for a DAG design (issue 19): its ``schedule.json`` is of ``"kind": "dag"``."""
        doc = read_json(self.require(self.SCHEDULE), "schedule")
        return isinstance(doc, dict) and doc.get("kind") == "dag"

    def graph(self) -> IntegerGraph:
        """The graph."""
        return IntegerGraph.load(self.require(self.MODEL))

    def load(self, what: str = "this step") -> tuple[IntegerGraph, Schedule]:
        """The graph and the chain schedule; a DAG design is refused, naming ``what`` needs a
        chain (:meth:`load_dag` reads a DAG's; the cocotb and fast checks and the build take
        both)."""
        if self.is_dag:
            raise LowbitError(
                f"{self.root}: a DAG design (schedule.json of kind 'dag'); {what} takes chain "
                "designs only yet: check it with 'lowbit sim DIR' (cocotb) or 'lowbit sim DIR "
                "--fast'"
            )
        return self.graph(), Schedule.load(self.require(self.SCHEDULE))

    def load_dag(self) -> tuple[IntegerGraph, DagSchedule]:
        """The graph and the :class:`~lowbit.mapping.dag.DagSchedule` of a DAG design; a chain
        design is refused (:meth:`load` reads it)."""
        if not self.is_dag:
            raise LowbitError(
                f"{self.root}: a chain design; expected a DAG design (schedule.json of kind "
                "'dag')"
            )
        return self.graph(), DagSchedule.load(self.require(self.SCHEDULE))

    def report(self) -> CompiledReport:
        """The parsed ``report.json``."""
        path = self.require(self.REPORT)
        return CompiledReport.from_dict(read_json(path, "report"), str(path))

    def write_report(self, report: CompiledReport) -> Path:
        """Write ``report.json`` atomically."""
        return write_json(self.report_path, report.to_dict())


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (NumPy scalars and arrays as numbers and
    lists)."""
    return atomic_write(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} as JSON")
