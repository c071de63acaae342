"""Run the stitched accelerator's Verilog under cocotb and check it against the oracle.

``simulate(graph, specs, x, workdir)`` writes the Verilog, builds it once, runs the testbench
:mod:`lowbit.sim.tb_accel` for a steady-state run (inputs always valid, output always ready: the
cycles per image are measured here) and for randomly throttled runs (values only), and returns a
:class:`SimReport`. The simulator is Verilator unless ``simulator="icarus"`` (or ``SIM=icarus``)
asks for Icarus Verilog; each simulator has its own build directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import LowbitError
from ..hw.axi.ddr_model import DEFAULT_BITS_PER_CYCLE
from ..hw.codec import StreamFormat
from ..hw.mvtu.spec import streams_weights
from ..hw.top import Accelerator
from ..hw.top import stream_format as stream_format_of
from ..hw.verilog import TOPLEVEL, write_verilog
from ..ir.graph import IntegerGraph
from ..tools import simulators as runner

__all__ = ["RunSpec", "SimReport", "simulate", "default_runs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    name: str
    valid_prob: float = 1.0
    ready_prob: float = 1.0
    seed: int = 0
    images: int = 1 << 30


def default_runs(
    n_images: int, *, throttled_images: int | None = None, seeds=(1, 2)
) -> list[RunSpec]:
    """One steady-state run over every image, then throttled runs (values only) per seed."""
    k = n_images if throttled_images is None else min(n_images, throttled_images)
    runs = [RunSpec("steady", 1.0, 1.0, 0, n_images)]
    runs += [RunSpec(f"throttled-seed{s}", 0.6, 0.5, s, k) for s in seeds]
    return runs


@dataclass(frozen=True)
class SimReport:
    runs: tuple[dict, ...]
    verilog: str
    verilog_sha256: str
    waves: str | None = None
    labels: tuple[int, ...] = field(default=())

    @property
    def steady(self) -> dict:
        return self.runs[0]

    @property
    def mismatches(self) -> int:
        """Images whose RTL scores or label differ from the reference, summed over all runs."""
        return sum(r["mismatched_images"] for r in self.runs)

    @property
    def ok(self) -> bool:
        return all(not r["mismatched_images"] and not r["timed_out"] for r in self.runs)


class _ProgressWatcher:
    """Poll the progress file the testbench writes and report ``(run, done, total)`` changes."""

    def __init__(self, path: Path, callback):
        self.path, self.callback = path, callback
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.last = None

    def _poll(self):
        while not self.stop.wait(0.25):
            self._check()

    def _check(self):
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        key = (state["run"], state["done"], state["total"])
        if key != self.last:
            self.last = key
            self.callback(*key)

    def __enter__(self):
        self.path.unlink(missing_ok=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._check()


def simulate(
    graph: IntegerGraph,
    specs,
    x: np.ndarray,
    workdir: str | Path,
    *,
    runs: list[RunSpec] | None = None,
    waves_on_failure: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    simulator: str | None = None,
    ddr_bits_per_cycle: int | None = None,
    verilog: str | Path | None = None,
    stream_format: StreamFormat | None = None,
    predicted_cycles: int | None = None,
) -> SimReport:
    """Build and run the accelerator of ``specs`` on images ``x``; compare with ``graph`` exactly.

    ``progress(run_name, images_done, images_total)`` is called from a helper thread while the
    testbench runs. With ``verilog`` (and its ``stream_format``), that file is simulated as it is
    (the design ``lowbit compile`` shipped) instead of Verilog elaborated from ``specs`` again,
    which for a large design is most of the time before Verilator starts. ``simulator`` is
    ``"verilator"`` or ``"icarus"``; ``None`` means ``$SIM``, else Verilator
    (:func:`lowbit.tools.simulators.resolve_simulator`). Layers that stream their weights from DDR
    get them from a model of a port of ``ddr_bits_per_cycle`` (default 64). ``predicted_cycles``
    (cycles per image; by default the slowest of ``specs``) sets the testbench's time limit; with
    ``verilog`` and ``predicted_cycles``, ``specs`` may be empty (a DAG design's shipped Verilog).
    """

    simulator = runner.resolve_simulator(simulator)
    # Verilator keeps the historical directory names; other simulators get their own.
    build_name = "sim_build" if simulator == "verilator" else f"sim_build_{simulator}"
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    x = graph.check_input(x)
    if verilog is not None:
        if stream_format is None:
            raise ValueError("simulate: verilog= needs its stream_format=")
        vpath = Path(verilog).resolve()
        fmt = stream_format
        sha = hashlib.sha256(vpath.read_bytes()).hexdigest()
    else:
        streamed = any(map(streams_weights, specs))
        acc = Accelerator(
            specs,
            ddr_bits_per_cycle=(ddr_bits_per_cycle or DEFAULT_BITS_PER_CYCLE) if streamed else None,
        )
        fmt = stream_format_of(acc)
        vpath = workdir / f"{TOPLEVEL}.v"
        sha = write_verilog(acc, vpath)
    model = workdir / "tb_model.npz"
    graph.save(model)
    images = workdir / "tb_images.npz"
    np.savez(images, x=x)
    runs = runs or default_runs(len(x))
    if predicted_cycles is not None:
        predicted = predicted_cycles
    elif specs:
        predicted = max(s.cycles() for s in specs)
    else:
        raise ValueError("simulate: no specs; give predicted_cycles= with verilog=")

    def run_once(build_dir: Path, waves: bool) -> list[dict]:
        stamp = build_dir / "built-from.sha256"
        built = runner.simulator_executable(build_dir, TOPLEVEL, simulator)
        if stamp.is_file() and stamp.read_text() == sha and built.is_file():
            log.info("reusing the %s build in %s (same Verilog)", simulator, build_dir)
        else:
            stamp.unlink(missing_ok=True)
            runner.build(vpath, TOPLEVEL, build_dir, waves=waves, simulator=simulator)
            stamp.write_text(sha)
        cfg = {
            "model": str(model),
            "images": str(images),
            "format": fmt.to_dict(),
            "predicted_cycles": predicted,
            "results": str(build_dir / "tb_results.json"),
            "runs": [r.__dict__ for r in runs],
        }
        progress_file = build_dir / "tb_progress.json"
        cfg["progress"] = str(progress_file)
        cfg_path = build_dir / "tb_config.json"
        cfg_path.write_text(json.dumps(cfg, indent=1))
        if progress is None:
            runner.run_test(
                "lowbit.sim.tb_accel",
                TOPLEVEL,
                build_dir,
                env={"LOWBIT_TB_CONFIG": str(cfg_path)},
                waves=waves,
                simulator=simulator,
            )
        else:
            with _ProgressWatcher(progress_file, progress):
                runner.run_test(
                    "lowbit.sim.tb_accel",
                    TOPLEVEL,
                    build_dir,
                    env={"LOWBIT_TB_CONFIG": str(cfg_path)},
                    waves=waves,
                    simulator=simulator,
                )
        res = build_dir / "tb_results.json"
        if not res.is_file():
            raise LowbitError(
                f"the cocotb testbench wrote no results ({res}); see {build_dir / 'sim.log'}"
            )
        return json.loads(res.read_text())["runs"]

    results = run_once(workdir / build_name, waves=False)
    report = SimReport(tuple(results), str(vpath), sha, labels=tuple(results[0]["labels"]))
    if not report.ok and waves_on_failure:
        log.warning("RTL simulation failed; re-running with waveforms")
        wdir = workdir / f"{build_name}_waves"
        run_once(wdir, waves=True)
        dumps = sorted(wdir.glob("*.fst")) + sorted(wdir.glob("*.vcd"))
        report = SimReport(
            report.runs, report.verilog, sha, str(dumps[0]) if dumps else None, report.labels
        )
    return report
