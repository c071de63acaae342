"""Simulate the sparse engine (:class:`lowbit.hw.sparse.engine.SparseEngine`) and check it against
the oracle.

* :func:`input_beats`, :func:`decode_outputs`, :func:`load_words` — the stream encodings (flat
  integers, first lane at the LSB), shared by every simulator.
* :func:`run_amaranth` — the Amaranth simulator (unit-test tier).
* :func:`simulate` — cocotb on Verilator: one build per spec (memories loaded at run time through
  the ``load`` port, so one build serves many layers of the same shape), the testbench
  :mod:`lowbit.sim.tb_sparse` compares outputs with ``sw_reference`` using ``==`` and measured
  cycles with the cycle model; on failure it runs again with VCD waves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from .. import LowbitError
from ..hw.sparse.engine import load_layout, memory_images
from ..hw.sparse.engine_spec import SparseEngineSpec
from ..hw.verilog import write_verilog
from ..sw_reference.sparse import SparseImage
from ..tools import simulators as runner

__all__ = [
    "input_beats",
    "decode_outputs",
    "load_words",
    "run_amaranth",
    "AmaranthRun",
    "simulate",
    "SparseLayer",
    "SparseRun",
    "default_runs",
    "SparseSimReport",
    "TOPLEVEL",
]

log = logging.getLogger(__name__)

TOPLEVEL = "sparse_top"


def input_beats(spec: SparseEngineSpec, x) -> list[int]:
    """The input beats of one activation vector ``x`` (``cols`` integers), zero-padded to whole
    beats."""
    x = [int(v) for v in np.asarray(x).reshape(-1)]
    if len(x) != spec.cols:
        raise ValueError(f"x must have {spec.cols} activations, not {len(x)}")
    lo, hi = -(1 << (spec.act_bits - 1)), (1 << (spec.act_bits - 1)) - 1
    if x and (min(x) < lo or max(x) > hi):
        raise ValueError(
            f"activations must fit act_bits={spec.act_bits} ({lo}..{hi}), not {min(x)}..{max(x)}"
        )
    x += [0] * (spec.beats * spec.lanes - len(x))
    mask = (1 << spec.act_bits) - 1
    return [
        sum((x[b * spec.lanes + i] & mask) << (i * spec.act_bits) for i in range(spec.lanes))
        for b in range(spec.beats)
    ]


def decode_outputs(spec: SparseEngineSpec, beats: list[int]) -> list[int]:
    """The ``rows`` outputs carried by one vector's output beats (row ``g*N + p`` in lane ``p``)."""
    w, mask = spec.out_bits, (1 << spec.out_bits) - 1
    vals = []
    for word in beats:
        for p in range(spec.pes):
            v = (word >> (p * w)) & mask
            vals.append(v - (1 << w) if v >> (w - 1) else v)
    return vals[: spec.rows]


def _capacity(spec: SparseEngineSpec) -> int:
    """``spec.capacity`` (``SparseEngineSpec`` sets it when it is not given)."""
    if spec.capacity is None:
        raise ValueError("the engine spec has no capacity")
    return spec.capacity


def load_words(spec: SparseEngineSpec, image: SparseImage) -> list[int]:
    """Payloads of the ``load`` stream that write ``image`` into every PE's memories."""

    layout = load_layout(spec)
    if image.max_entries > _capacity(spec):
        raise ValueError(
            f"image needs {image.max_entries} entries per PE; the engine holds {spec.capacity} "
            "(capacity)"
        )
    off = {name: layout[name].offset for name in ("pe", "mem", "addr", "data")}
    words = []
    for p, mems in enumerate(memory_images(spec, image)):
        for kind, content in mems.items():
            for addr, value in enumerate(content):
                words.append(
                    p << off["pe"] | kind << off["mem"] | addr << off["addr"] | value << off["data"]
                )
    return words


@dataclass(frozen=True)
class AmaranthRun:
    outputs: tuple[tuple[int, ...], ...]  # per vector, the rows' outputs
    cycles: tuple[int, ...]  # per vector, the engine's cycle-count status


def run_amaranth(
    spec: SparseEngineSpec,
    xs,
    *,
    image: SparseImage | None = None,
    ready_prob: float = 1.0,
    valid_prob: float = 1.0,
    seed: int = 0,
    vcd: str | None = None,
) -> AmaranthRun:
    """Run vectors ``xs`` through the engine in the Amaranth simulator.

    The engine is elaborated with ``spec.image``; ``image`` (optional) is written through the
    ``load`` port first.
    """
    from amaranth.sim import Simulator

    dut = spec.create()
    xs = np.atleast_2d(np.asarray(xs))
    rng = random.Random(seed)
    outputs, cycles = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        if image is not None:
            for word in load_words(spec, image):
                ctx.set(dut.load.valid, 1)
                ctx.set(dut.load.payload.as_value(), word)
                await ctx.tick()
            ctx.set(dut.load.valid, 0)
        for x in xs:
            beats = input_beats(spec, x)
            got = []
            while len(got) < spec.out_beats:
                if beats and rng.random() < valid_prob:
                    ctx.set(dut.i.valid, 1)
                    ctx.set(dut.i.payload.as_value(), beats[0])
                else:
                    ctx.set(dut.i.valid, 0)
                ready = rng.random() < ready_prob
                ctx.set(dut.o.ready, ready)
                _, _, iv, ir, ov, payload = await ctx.tick().sample(
                    dut.i.valid, dut.i.ready, dut.o.valid, dut.o.payload.as_value()
                )
                if iv and ir:
                    beats.pop(0)
                if ov and ready:
                    got.append(int(payload))
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            outputs.append(tuple(decode_outputs(spec, got)))
            cycles.append(int(ctx.get(dut.cycles)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return AmaranthRun(tuple(outputs), tuple(cycles))


@dataclass(frozen=True, eq=False)
class SparseLayer:
    """A layer for :func:`simulate`: its ``image`` (the reference's), its activation vectors ``x``
    (``(B, cols)``) and, to inject a fault, a different ``hw_image`` to load into the engine."""

    image: SparseImage
    x: np.ndarray
    hw_image: SparseImage | None = None


@dataclass(frozen=True)
class SparseRun:
    name: str
    layer: int = 0
    valid_prob: float = 1.0
    ready_prob: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class SparseSimReport:
    runs: tuple[dict, ...]
    verilog: str
    waves: str | None = None

    @property
    def mismatches(self) -> int:
        """Vectors whose outputs (or, in unthrottled runs, cycles) differ, summed over the runs."""
        return sum(r["mismatched_vectors"] for r in self.runs)

    @property
    def ok(self) -> bool:
        return all(
            not r["mismatched_vectors"] and not r["timed_out"] and not r["status_mismatches"]
            for r in self.runs
        )


def default_runs(n_layers: int, *, throttled: bool = True) -> list[SparseRun]:
    """Per layer an unthrottled run (values and cycles) and, optionally, a throttled one
    (values)."""
    runs = []
    for k in range(n_layers):
        runs.append(SparseRun(f"layer{k}-steady", k))
        if throttled:
            runs.append(SparseRun(f"layer{k}-throttled-seed{k + 1}", k, 0.6, 0.5, k + 1))
    return runs


def _spec_dict(spec: SparseEngineSpec) -> dict:

    out = {}
    for f in fields(spec):
        if f.name != "image":
            v = getattr(spec, f.name)
            out[f.name] = v if isinstance(v, bool) else int(v)
    return out


def _save_layer(path: Path, layer: SparseLayer, spec: SparseEngineSpec) -> None:
    arrays = {"x": np.asarray(layer.x, dtype=np.int64).reshape(-1, spec.cols)}
    for prefix, im in (("ref_", layer.image), ("hw_", layer.hw_image or layer.image)):
        if (im.rows, im.cols, im.pes) != (spec.rows, spec.cols, spec.pes):
            raise ValueError(
                f"layer image is {im.rows}x{im.cols} over {im.pes} PEs; the engine is "
                f"{spec.rows}x{spec.cols} over {spec.pes}"
            )
        if im.max_entries > _capacity(spec):
            raise ValueError(
                f"layer image needs {im.max_entries} entries per PE; capacity is {spec.capacity}"
            )
        arrays[f"{prefix}codebook"] = im.codebook
        for p, pim in enumerate(im.pe_images):
            arrays[f"{prefix}ptr{p}"], arrays[f"{prefix}v{p}"], arrays[f"{prefix}z{p}"] = (
                pim.ptr,
                pim.v,
                pim.z,
            )
    # numpy's stub: a **dict of arrays also matches savez's keyword allow_pickle: bool
    np.savez(path, **arrays)  # type: ignore[arg-type]


def simulate(
    spec: SparseEngineSpec,
    layers: list[SparseLayer],
    workdir: str | Path,
    *,
    runs: list[SparseRun] | None = None,
    waves_on_failure: bool = True,
    trace: bool = False,
    simulator: str | None = None,
) -> SparseSimReport:
    """Build the engine of ``spec`` once (weights loaded at run time) and run ``layers`` under
    cocotb.

    Every run's outputs are compared with ``sw_reference`` using ``==``; unthrottled runs also
    compare the measured cycles with the cycle model. On failure (and ``waves_on_failure``) the
    runs are repeated with VCD waves, whose path the report gives: in a second build, or in the
    same one when ``trace`` builds it with tracing from the start (slower to build, but a failing
    run then needs no second build). A build is reused when ``workdir`` holds one of the same
    Verilog.
    """

    if spec.image is not None:
        spec = replace(spec, image=None)  # one build for any weights: they are loaded at run time
    simulator = runner.resolve_simulator(simulator)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    vpath = workdir / f"{TOPLEVEL}.v"
    sha = write_verilog(spec.create(), vpath, TOPLEVEL)
    layer_paths = []
    for k, layer in enumerate(layers):
        path = workdir / f"layer{k}.npz"
        _save_layer(path, layer, spec)
        layer_paths.append(str(path))
    runs = runs or default_runs(len(layers))

    def run_once(build_dir: Path, waves: bool, traced: bool) -> list[dict]:
        build_dir.mkdir(parents=True, exist_ok=True)
        stamp = build_dir / "built-from.sha256"
        key = f"{sha} trace={traced}"
        built = runner.simulator_executable(build_dir, TOPLEVEL, simulator)
        if not (stamp.is_file() and stamp.read_text() == key and built.is_file()):
            stamp.unlink(missing_ok=True)
            runner.build(vpath, TOPLEVEL, build_dir, waves=traced, simulator=simulator)
            stamp.write_text(key)
        results = build_dir / "tb_results.json"
        results.unlink(missing_ok=True)
        cfg = {
            "spec": _spec_dict(spec),
            "layers": layer_paths,
            "results": str(results),
            "runs": [r.__dict__ for r in runs],
        }
        cfg_path = build_dir / "tb_config.json"
        cfg_path.write_text(json.dumps(cfg, indent=1))
        runner.run_test(
            "lowbit.sim.tb_sparse",
            TOPLEVEL,
            build_dir,
            env={"LOWBIT_TB_CONFIG": str(cfg_path)},
            waves=waves,
            simulator=simulator,
        )
        if not results.is_file():
            raise LowbitError(
                f"the cocotb testbench wrote no results ({results}); see {build_dir / 'sim.log'}"
            )
        return json.loads(results.read_text())["runs"]

    name = "sim_build" if simulator == "verilator" else f"sim_build_{simulator}"
    report = SparseSimReport(tuple(run_once(workdir / name, False, trace)), str(vpath))
    log.info(
        "sparse engine %s: %d runs, %d mismatched vectors (sha256 %s)",
        TOPLEVEL,
        len(report.runs),
        report.mismatches,
        hashlib.sha256(vpath.read_bytes()).hexdigest()[:12],
    )
    if not report.ok and waves_on_failure:
        log.warning("sparse engine RTL simulation failed; re-running with waveforms")
        wdir = workdir / name if trace else workdir / f"{name}_waves"
        for old in wdir.glob("*.vcd"):
            old.unlink()
        run_once(wdir, True, True)
        dumps = sorted(wdir.glob("*.vcd")) + sorted(wdir.glob("*.fst"))
        report = SparseSimReport(report.runs, report.verilog, str(dumps[0]) if dumps else None)
    return report
