"""The flow from one build config: ``lowbit run config.yaml`` (FINN's builder, lowbit's steps).

A config (YAML or JSON, checked against :data:`SCHEMA`; errors name the key) says where the model
comes from and what to make of it::

    model: lfc.onnx              # an ONNX/QONNX/QDQ model or a lowbit .npz (or `train:` instead)
    board: pynq-z2
    budget: 0.5
    steps: [import, map, compile, simulate, build]
    simulate: {dataset: digits, count: 200}

The steps (:data:`STEPS`) run in order, each writing its outputs into one output directory that
survives a failure:

========== ================================================================= ====================
step       what it does                                                      writes
========== ================================================================= ====================
import     import the ONNX model, read the lowbit model, or train the demo    ``model.npz``
           binarized MLP on the digits (``train:``)
map        search the folding (or read ``schedule:``, a hand-edited one) and  ``schedule.json``,
           price it                                                           ``map.json``
compile    the Verilog, its stream format and reports, for the schedule in    ``compiled/``
           ``schedule.json`` (edit it and resume from here)
simulate   the RTL on the fast path against the reference, bit for bit and    ``simulate.json``
           cycle for cycle, with accuracy when the images have labels
build      a bitstream (open-flow boards) or a Vivado plan (Zynq)             ``build/``
flash      the flash plan (a dry run: programming takes ``lowbit flash --yes``) ``flash.json``
========== ================================================================= ====================

Each step logs to ``logs/NN_<step>.log`` (every message of the ``lowbit`` loggers while it runs,
and the error when it fails); ``time_per_step.json`` holds each step's seconds and
``flow.json`` the config, each step's status and result. ``start`` resumes from a step: the steps
before it must have finished in this output directory (their outputs are read back, not redone).
A step that runs longer than ``heartbeat_s`` says so every ``heartbeat_s`` seconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from . import LowbitError
from ._io import atomic_write, cannot_write
from .api import DEFAULT_BOARD, Model, load, open_compiled
from .boards import get_board
from .deploy.build import DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S
from .deploy.build import build as build_design
from .deploy.flash import plan_flash
from .flow.heartbeat import Heartbeat
from .ir.boundary import InputQuant
from .ir.files import confine, parse_json, read_limited
from .ir.graph import IntegerGraph
from .ir.inputs import read_images
from .limits import LIMITS, check
from .mapping import DEFAULT_BUDGET, Schedule
from .mapping.buildsize import default_budget
from .mapping.report import mapping_report
from .quant.data import load_dataset, load_digits_split
from .quant.train.binary_mlp import TrainConfig, train_binary_mlp

__all__ = ["SCHEMA", "STEPS", "FlowConfig", "FlowResult", "load_config", "run_flow"]

log = logging.getLogger(__name__)

STEPS = ("import", "map", "compile", "simulate", "build", "flash")
"""Every step, in the order they run."""

DEFAULT_STEPS = ("import", "map", "compile", "simulate", "build")
"""The steps a config without ``steps`` runs (flash only when asked)."""

_PATH = {"type": "string", "minLength": 1}
_SHARE = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "lowbit build config",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1, "description": "the config format's version (1)"},
        "name": {"type": "string", "maxLength": 80, "description": "the model's name in reports"},
        "model": {**_PATH, "description": "an .onnx model or a lowbit .npz, beside the config"},
        "train": {
            "type": "object",
            "additionalProperties": False,
            "description": "train the demo model (a binarized MLP on the digits) instead",
            "properties": {
                "hidden": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": 4096},
                    "maxItems": 8,
                },
                "epochs": {"type": "integer", "minimum": 1, "maximum": 1000},
                "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
            },
        },
        "input_quant": {"type": "string", "description": "TYPE:SCALE[:ZP] of a float input"},
        "input_wire": {"type": "string", "description": "TYPE:SCALE[:ZP] pixels on the wire"},
        "board": {"type": "string", "minLength": 1},
        "budget": {
            **_SHARE,
            "description": "share of each board resource the folding may use (default 0.7; on "
            "open-flow boards the share holding 5,000 LUT6-eq, 0.1 on ulx3s-85f: "
            "mapping.buildsize.default_budget, as lowbit build)",
        },
        "target_fps": {"type": "number", "exclusiveMinimum": 0},
        "act_density": _SHARE,
        "schedule": {**_PATH, "description": "a folding (lowbit map -o) to use as it is"},
        "clock_mhz": {"type": "number", "exclusiveMinimum": 0, "maximum": LIMITS.clock_mhz},
        "steps": {
            "type": "array",
            "items": {"enum": list(STEPS)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "simulate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dataset": {"enum": ["digits", "mnist5k"]},
                "images": _PATH,
                "random": {"type": "integer", "minimum": 1, "maximum": LIMITS.images},
                "count": {"type": "integer", "minimum": 1, "maximum": LIMITS.images},
                "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
            },
        },
        "build": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "run_vivado": {"type": "boolean"},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S},
            },
        },
        "flash": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"via": {"type": "string", "minLength": 1}},
        },
        "heartbeat_s": {"type": "number", "minimum": 1, "maximum": 3600},
        "output": {**_PATH, "description": "the output directory (default: <config>_out)"},
    },
    "oneOf": [{"required": ["model"]}, {"required": ["train"]}],
}
"""The JSON Schema (draft 2020-12) of a build config."""


@dataclass(frozen=True)
class FlowConfig:
    """A checked build config; paths are resolved and inside the config's directory."""

    source: Path
    """The config file."""
    output: Path
    doc: dict
    """The config as written (after the schema check)."""
    steps: tuple[str, ...]
    board: str
    model: Path | None = None
    train: dict | None = None
    schedule: Path | None = None
    images: Path | None = None
    input_quant: InputQuant | None = None
    input_wire: InputQuant | None = None

    def option(self, key: str, default: Any = None) -> Any:
        return self.doc.get(key, default)

    def section(self, key: str) -> dict:
        return dict(self.doc.get(key, {}))


@dataclass(frozen=True)
class StepRecord:
    """One step's run: ``status`` is ``"done"`` or ``"failed"``."""

    step: str
    status: str
    seconds: float
    log: str
    result: dict | None = None
    error: str | None = None


@dataclass(frozen=True)
class FlowResult:
    """The flow's run: the output directory and every step's record (earlier runs' included)."""

    output: Path
    records: tuple[StepRecord, ...]

    @property
    def ok(self) -> bool:
        return all(r.status == "done" for r in self.records)

    def record(self, step: str) -> StepRecord | None:
        return next((r for r in self.records if r.step == step), None)


# -- reading the config ------------------------------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing aliases (a YAML bomb expands them)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted", event.start_mark
            )
        return super().compose_node(parent, index)


def _parse(path: Path) -> Any:
    data = read_limited(path, "build config")
    if path.suffix.lower() == ".json":
        return parse_json(data, str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LowbitError(f"{path}: not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()
        raise LowbitError(f"{path}: not a YAML document ({' '.join(first[:3])})") from None
    except RecursionError:
        raise LowbitError(f"{path}: YAML nesting too deep") from None


def _schema_error(doc: Any) -> str | None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), e.path))
    if not errors:
        return None
    e = jsonschema.exceptions.best_match(errors)
    key = ".".join(str(k) for k in e.absolute_path)
    if e.validator == "additionalProperties":
        props = e.schema.get("properties", {})
        extra = sorted(set(e.instance) - set(props))
        near = difflib.get_close_matches(extra[0], list(props), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else f"; expected one of {sorted(props)}"
        where = f"{key}." if key else ""
        return f"unknown key '{where}{extra[0]}'{hint}"
    if e.validator == "oneOf" and not key:
        both = isinstance(doc, dict) and "model" in doc and "train" in doc
        return (
            "give either 'model' or 'train', not both"
            if both
            else "missing key 'model' (a model file) or 'train' (train the demo model)"
        )
    if e.validator == "type" and not key:
        return f"expected a mapping of keys (YAML or JSON object), not {type(doc).__name__}"
    message = e.message if len(e.message) <= 160 else e.message[:157] + "..."
    return f"key '{key}': {message}"


def _non_finite(doc: Any, path: str = "") -> str | None:
    """The key path of the first NaN or infinite number in ``doc``, or None."""
    if isinstance(doc, float) and not math.isfinite(doc):
        return path or "(the document)"
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for k, v in items:
        found = _non_finite(v, f"{path}.{k}" if path else str(k))
        if found is not None:
            return found
    return None


def load_config(path: str | os.PathLike, *, output: str | os.PathLike | None = None) -> FlowConfig:
    """The build config in ``path`` (``.yaml``/``.yml`` or ``.json``), checked against
    :data:`SCHEMA`.

    Paths in it are relative to its directory and must stay inside it (symbolic links resolved);
    ``output`` (a command-line option) overrides the config's ``output``.

    Raises
    ------
    LowbitError
        Naming the file and the key.
    """
    src = Path(path)
    if src.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise LowbitError(f"{src}: a build config must be a .yaml, .yml or .json file")
    doc = _parse(src)
    bad = _non_finite(doc)
    if bad is not None:  # JSON Schema's bounds do not catch NaN (every comparison is false)
        raise LowbitError(f"{src}: key '{bad}' must be a finite number")
    problem = _schema_error(doc)
    if problem is not None:
        raise LowbitError(f"{src}: {problem}")
    base = src.parent

    def inside(key: str, value: str) -> Path:
        return confine(base, value, str(src), key, place="config's directory")

    model = inside("model", doc["model"]) if "model" in doc else None
    if model is not None and not model.is_file():
        raise LowbitError(f"{src}: key 'model' names {doc['model']!r}, which is not a file")
    schedule = inside("schedule", doc["schedule"]) if "schedule" in doc else None
    if schedule is not None and not schedule.is_file():
        raise LowbitError(f"{src}: key 'schedule' names {doc['schedule']!r}, which is not a file")
    quants: dict[str, InputQuant | None] = {}
    for key in ("input_quant", "input_wire"):
        try:
            quants[key] = InputQuant.parse(doc[key]) if key in doc else None
        except ValueError as e:
            raise LowbitError(f"{src}: key {key!r}: {e}") from None
    sim = doc.get("simulate", {})
    sources = [k for k in ("dataset", "images", "random") if k in sim]
    if len(sources) > 1:
        raise LowbitError(
            f"{src}: key 'simulate': give one of 'dataset', 'images' or 'random', not "
            f"{' and '.join(sources)}"
        )
    images = inside("simulate.images", sim["images"]) if "images" in sim else None
    if model is not None and model.suffix.lower() != ".onnx" and "input_quant" in doc:
        raise LowbitError(f"{src}: key 'input_quant' applies to ONNX models only")
    board = doc.get("board", DEFAULT_BOARD)
    try:
        board = get_board(board).name
    except LowbitError as e:
        raise LowbitError(f"{src}: key 'board': {e}") from None
    if output is not None:
        out = Path(output)
    elif "output" in doc:
        out = inside("output", doc["output"])
    else:
        out = base / f"{src.stem}_out"
    if out.exists() and not out.is_dir():
        raise LowbitError(f"{out}: the output must be a directory, and this is a file")
    steps = tuple(s for s in STEPS if s in doc.get("steps", DEFAULT_STEPS))
    return FlowConfig(
        source=src,
        output=out,
        doc=doc,
        steps=steps,
        board=board,
        model=model,
        train=doc.get("train"),
        schedule=schedule,
        images=images,
        input_quant=quants["input_quant"],
        input_wire=quants["input_wire"],
    )


# -- the steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ctx:
    config: FlowConfig
    out: Path

    @property
    def model_file(self) -> Path:
        return self.out / "model.npz"

    @property
    def schedule_file(self) -> Path:
        return self.out / "schedule.json"

    @property
    def compiled_dir(self) -> Path:
        return self.out / "compiled"

    def need(self, path: Path, step: str) -> Path:
        if not path.exists():
            raise LowbitError(
                f"{path}: missing; it is the output of step '{step}': run that step first "
                f"(or resume from it)"
            )
        return path

    def model(self) -> Model:
        return load(self.need(self.model_file, "import"))


def _step_import(ctx: _Ctx) -> dict:
    cfg = ctx.config
    if cfg.train is not None:
        t = cfg.train
        params: dict[str, Any] = {k: tuple(v) if k == "hidden" else v for k, v in t.items()}
        data = load_digits_split()
        log.info("training a binarized MLP on the digits (%s)", params or "the defaults")
        trained = train_binary_mlp(data.x_train, data.y_train, TrainConfig(**params))
        graph = trained.to_integer_graph()
        if cfg.input_wire is not None:
            graph = graph.with_input_wire(cfg.input_wire)
        source = "trained (binarized MLP, digits)"
    else:
        assert cfg.model is not None
        m = load(
            cfg.model,
            input_quant=cfg.input_quant,
            input_wire=cfg.input_wire,
        )
        graph = m.graph
        source = str(cfg.model)
    graph.save(ctx.model_file)
    log.info("wrote %s", ctx.model_file)
    return {
        "source": source,
        "model": ctx.model_file.name,
        "nodes": len(graph.nodes),
        "input": graph.input_dtype.name,
        "classes": graph.classes,
    }


def _map_summary(report: dict) -> dict:
    return {
        "board": report["board"],
        "clock_mhz": report["clock_mhz"],
        "cycles_per_image": report["cycles_per_image"],
        "images_per_second": report["throughput_fps"],
        "bottleneck": report["bottleneck"],
        "resources": {k: v["fraction"] for k, v in report["resources"].items()},
    }


def _step_map(ctx: _Ctx) -> dict:
    cfg = ctx.config
    m = ctx.model()
    if m.graph.dag_nodes():
        raise LowbitError(
            f"{cfg.source}: the model is a DAG (node {m.graph.dag_nodes()[0].name!r}); 'lowbit "
            "run' takes chains only yet: 'lowbit compile MODEL [--target-fps F]', then 'lowbit "
            "sim DIR' and 'lowbit build DIR' take it"
        )
    if cfg.schedule is not None:
        schedule = Schedule.load(cfg.schedule)
        if get_board(schedule.board).name != cfg.board and "board" in cfg.doc:
            raise LowbitError(
                f"{cfg.source}: key 'schedule' was made for {schedule.board}, but key 'board' "
                f"says {cfg.board}"
            )
        schedule.check_fits(m.graph, budget=cfg.option("budget", 1.0))
        log.info("using the folding in %s", cfg.schedule)
    else:
        target = cfg.option("target_fps")
        schedule = m.map(
            board=cfg.board,
            budget=cfg.option(
                "budget", DEFAULT_BUDGET if target else default_budget(get_board(cfg.board))
            ),
            target_fps=target,
            act_density=cfg.option("act_density", 0.5),
        ).schedule
    if cfg.option("clock_mhz") is not None:
        schedule = dataclasses.replace(schedule, clock_mhz=float(cfg.option("clock_mhz")))
    # what 'lowbit map' reports and 'compile' stores: energy, placement and boundary included
    report = mapping_report(m.graph, schedule, act_density=cfg.option("act_density", 0.5))
    schedule.save(ctx.schedule_file)
    atomic_write(ctx.out / "map.json", json.dumps(report, indent=2, default=str) + "\n")
    summary = _map_summary(report)
    log.info(
        "%s @ %g MHz: %d cycles per image, %.0f images/s, bottleneck %s",
        summary["board"],
        summary["clock_mhz"],
        summary["cycles_per_image"],
        summary["images_per_second"],
        summary["bottleneck"],
    )
    return summary


def _step_compile(ctx: _Ctx) -> dict:
    m = ctx.model()
    schedule = Schedule.load(ctx.need(ctx.schedule_file, "map"))
    compiled = m.compile(ctx.compiled_dir, schedule=schedule, budget=ctx.config.option("budget"))
    log.info("wrote %s (%s)", compiled.dir, compiled.report.verilog)
    return {
        "dir": ctx.compiled_dir.name,
        "verilog": compiled.report.verilog,
        "verilog_sha256": compiled.report.verilog_sha256,
        "cycles_per_image": compiled.cycles_per_image,
    }


def _images(ctx: _Ctx, graph: IntegerGraph) -> tuple[np.ndarray, np.ndarray | None, str]:
    cfg = ctx.config
    sim = cfg.section("simulate")
    count = sim.get("count")
    if cfg.images is not None:
        x, y = read_images(cfg.images)
        what = str(cfg.images)
    elif "random" in sim:
        rng = np.random.default_rng(sim.get("seed", 0))
        x = graph.input_dtype.sample(rng, (sim["random"], graph.input_size))
        y, what = None, f"{sim['random']} random input vectors"
    else:
        data = load_dataset(sim.get("dataset", "digits"), seed=sim.get("seed", 0))
        x, y = data.x_test, data.y_test
        what = f"{sim.get('dataset', 'digits')} test split"
    check(what, "images", len(x), LIMITS.images)
    if count is not None:
        x = x[:count]
        y = None if y is None else y[:count]
    return x, y, what


def _step_simulate(ctx: _Ctx) -> dict:
    design = open_compiled(ctx.need(ctx.compiled_dir, "compile"))
    x, y, what = _images(ctx, design.model.graph)
    log.info("simulating %d images (%s) on the fast path", len(x), what)
    res = design.simulate(x, y)
    summary = {
        "images": res.images,
        "data": what,
        "bit_exact": res.bit_exact,
        "label_mismatches": res.label_mismatches,
        "cycles_per_image_measured": res.cycles_per_image_measured,
        "cycles_per_image_predicted": res.cycles_per_image_predicted,
        "cycles_equal": res.cycles_equal,
        "accuracy_reference": res.accuracy_reference,
        "accuracy_rtl": res.accuracy_rtl,
        "mismatch": None if res.mismatch is None else str(res.mismatch),
    }
    atomic_write(ctx.out / "simulate.json", json.dumps(summary, indent=2) + "\n")
    if not res.bit_exact:
        raise LowbitError(
            f"the RTL differs from the reference: {summary['mismatch']} "
            f"({res.label_mismatches} label mismatches); see {ctx.out / 'simulate.json'}"
        )
    log.info("bit-exact on %d images", res.images)
    return summary


def _step_build(ctx: _Ctx) -> dict:
    compiled = ctx.need(ctx.compiled_dir, "compile")
    section = ctx.config.section("build")
    manifest = build_design(
        compiled,
        ctx.config.board,
        ctx.out / "build",
        run=bool(section.get("run_vivado", False)),
        clock_mhz=ctx.config.option("clock_mhz"),
        timeout=float(section.get("timeout_s", DEFAULT_TIMEOUT_S)),
    )
    keep = ("flow", "board", "part", "bitstream", "clock_mhz", "fmax_mhz", "meets_clock", "run",
            "utilisation")
    return {"dir": "build", **{k: manifest[k] for k in keep if k in manifest}}


def _step_flash(ctx: _Ctx) -> dict:
    build_dir = ctx.need(ctx.out / "build", "build")
    via = ctx.config.section("flash").get("via")
    plan = (
        plan_flash(build_dir, ctx.config.board)
        if via is None
        else plan_flash(build_dir, ctx.config.board, via)
    )
    doc = {"bitstream": str(plan.bitstream), "commands": list(plan.commands)}
    atomic_write(ctx.out / "flash.json", json.dumps(doc, indent=2) + "\n")
    log.info("flash plan (a dry run; 'lowbit flash %s --yes' programs): %s", build_dir, doc)
    return doc


_RUNNERS: dict[str, Callable[[_Ctx], dict]] = {
    "import": _step_import,
    "map": _step_map,
    "compile": _step_compile,
    "simulate": _step_simulate,
    "build": _step_build,
    "flash": _step_flash,
}


# -- running them ---------------------------------------------------------------------------------


def _read_state(out: Path) -> dict:
    path = out / "flow.json"
    if not path.is_file():
        return {}
    doc = parse_json(read_limited(path, "flow state"), str(path))
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), dict):
        raise LowbitError(f"{path}: not a lowbit flow state (expected an object with 'steps')")
    return doc


def _write_state(ctx: _Ctx, records: dict[str, StepRecord]) -> None:
    ordered = [records[s] for s in STEPS if s in records]
    state = {
        "format": "lowbit-flow",
        "version": 1,
        "config": str(ctx.config.source),
        "settings": ctx.config.doc,
        "steps": {r.step: dataclasses.asdict(r) for r in ordered},
    }
    atomic_write(ctx.out / "flow.json", json.dumps(state, indent=2, default=str) + "\n")
    times = {r.step: round(r.seconds, 3) for r in ordered}
    atomic_write(ctx.out / "time_per_step.json", json.dumps(times, indent=2) + "\n")


def _record(doc: Any, step: str) -> StepRecord | None:
    if not isinstance(doc, dict):
        return None
    try:
        return StepRecord(
            step=step,
            status=str(doc["status"]),
            seconds=float(doc["seconds"]),
            log=str(doc["log"]),
            result=doc.get("result"),
            error=doc.get("error"),
        )
    except (KeyError, TypeError, ValueError):
        return None


def run_flow(
    config: FlowConfig,
    *,
    start: str | None = None,
    stop: str | None = None,
    say: Callable[[str], None] | None = None,
) -> FlowResult:
    """Run ``config``'s steps from ``start`` (default: the first) to ``stop`` (default: the last)
    into its output directory.

    A step that fails is recorded (``flow.json``, ``time_per_step.json``, its log) and the run
    stops there; the result's ``ok`` is then false and the error is in the step's record.

    Raises
    ------
    LowbitError
        For ``start``/``stop`` that are not steps of the config, or a resume whose earlier steps
        have not finished in the output directory.
    """
    say = say or (lambda msg: log.info("%s", msg))
    steps = list(config.steps)
    for flag, value in (("start", start), ("stop", stop)):
        if value is not None and value not in steps:
            raise LowbitError(
                f"--{'from' if flag == 'start' else 'to'} {value!r}: not a step of "
                f"{config.source} (its steps: {', '.join(steps)})"
            )
    first = steps.index(start) if start else 0
    last = steps.index(stop) if stop else len(steps) - 1
    if first > last:
        raise LowbitError(f"--from {start!r} comes after --to {stop!r}")
    out = config.output
    if out.is_dir() and any(out.iterdir()) and not (out / "flow.json").is_file():
        raise LowbitError(
            f"{out}: not the output of a lowbit flow (no flow.json) and not empty; the steps "
            "write model.npz, compiled/, build/ ... there: give a new or empty directory"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(out, e) from None
    (out / "logs").mkdir(exist_ok=True)
    ctx = _Ctx(config, out)
    state = _read_state(out)
    records: dict[str, StepRecord] = {}
    for s in steps[:first]:
        rec = _record(state.get("steps", {}).get(s), s)
        if rec is None or rec.status != "done":
            raise LowbitError(
                f"--from {start}: step '{s}' has not finished in {out}; run the flow from "
                f"'{s}' (or from the start)"
            )
        records[s] = rec
    todo = steps[first : last + 1]
    lowbit_log = logging.getLogger("lowbit")
    heartbeat = float(config.option("heartbeat_s", 30))
    for i, s in enumerate(todo, start=first + 1):
        log_path = out / "logs" / f"{STEPS.index(s) + 1:02d}_{s}.log"
        say(f"Running step {i}/{len(steps)}: {s}")
        handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.DEBUG)
        old_level = lowbit_log.level
        lowbit_log.addHandler(handler)
        if lowbit_log.getEffectiveLevel() > logging.INFO:
            lowbit_log.setLevel(logging.INFO)
        t0 = time.monotonic()
        error = None
        result = None
        try:
            with Heartbeat(s, heartbeat, say):
                result = _RUNNERS[s](ctx)
        except LowbitError as e:
            error = str(e)
            log.error("step %s failed: %s", s, error)
        except Exception as e:  # a bug: keep the traceback in the log, then let it propagate
            log.exception("step %s: internal error", s)
            records[s] = StepRecord(s, "failed", time.monotonic() - t0, _rel(log_path, out),
                                    error=f"internal error: {type(e).__name__}: {e}")
            _write_state(ctx, records)
            raise
        finally:
            lowbit_log.removeHandler(handler)
            lowbit_log.setLevel(old_level)
            handler.close()
        seconds = time.monotonic() - t0
        rec = StepRecord(
            s,
            "done" if error is None else "failed",
            seconds,
            _rel(log_path, out),
            result=result,
            error=error,
        )
        records[s] = rec
        _write_state(ctx, records)
        if error is not None:
            break
        say(f"  {s}: done in {seconds:.1f} s")
    return FlowResult(out, tuple(records[s] for s in STEPS if s in records))


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def summary_lines(result: FlowResult) -> list[str]:
    """The run's summary: a line per step with its time and main figures."""
    lines = [f"lowbit flow in {result.output}:"]
    for r in result.records:
        res = r.result or {}
        if r.status != "done":
            detail = f"FAILED: {r.error}"
        elif r.step == "import":
            detail = f"{res.get('nodes')} layers, input {res.get('input')}, {res.get('source')}"
        elif r.step == "map":
            detail = (
                f"{res.get('board')} @ {res.get('clock_mhz')} MHz, {res.get('cycles_per_image')} "
                f"cycles/image, {res.get('images_per_second', 0):.0f} images/s"
            )
        elif r.step == "compile":
            detail = f"{res.get('dir')}/{res.get('verilog')}"
        elif r.step == "simulate":
            acc = res.get("accuracy_rtl")
            detail = f"bit-exact on {res.get('images')} images" + (
                "" if acc is None else f", accuracy {100 * acc:.1f} %"
            )
            if res.get("cycles_per_image_measured") is not None:
                detail += (
                    f", {res['cycles_per_image_measured']:g} cycles/image measured "
                    f"({res.get('cycles_per_image_predicted')} predicted)"
                )
        elif r.step == "build" and res.get("flow") == "open":
            fmax = res.get("fmax_mhz")
            detail = f"bitstream build/{res.get('bitstream')}" + (
                "" if fmax is None else f", Fmax {fmax:.1f} MHz (clock {res.get('clock_mhz')} MHz)"
            )
        elif r.step == "build":
            detail = f"Vivado plan in build/ ({res.get('run')} writes build/{res.get('bitstream')})"
        else:
            detail = ", ".join(res.get("commands", []))[:100]
        lines.append(f"  {r.step:9s} {r.seconds:7.1f} s  {detail}")
    return lines
