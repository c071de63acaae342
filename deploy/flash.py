"""Programming a board with a build's bitstream: openFPGALoader (JTAG/USB), the Linux FPGA manager,
PYNQ (``pynq.Overlay`` on the board) or Xilinx's ``xsct`` (JTAG through a hardware server).

Every method first plans (:func:`plan_flash`): it finds the bitstream of a ``lowbit build`` output,
checks that it was built for the board's part (the ``build.json`` manifest, and the part named in
the bitstream itself where the format has one: the Xilinx ``.bit`` header, the ECP5 ``Part:``
comment), and returns the exact commands. :func:`flash` carries them out.

The FPGA manager path (on a Zynq running Linux) converts the ``.bit`` into the raw ``.bin`` the
kernel loads (:func:`bit_to_bin`: header removed, every 32-bit word byte-swapped), copies it to
``<root>/lib/firmware/`` and writes ``0`` (full reconfiguration) to ``flags`` and the file name to
``firmware`` under ``<root>/sys/class/fpga_manager/<manager>/``. ``root`` is ``/`` on a board and a
temporary directory in the tests.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .. import LowbitError
from .._io import atomic_write
from ..boards.records import Board, get_board
from ..ir.files import confine, read_json, read_limited
from ..limits import LIMITS, check
from ..tools.fpga import openfpgaloader_command

__all__ = [
    "METHODS",
    "BitHeader",
    "parse_bit",
    "bit_to_bin",
    "bitstream_part",
    "FlashPlan",
    "load_manifest",
    "plan_flash",
    "flash",
]

logger = logging.getLogger(__name__)

METHODS = ("openfpgaloader", "fpga-manager", "pynq", "xsct")
"""Ways of programming a board."""

_BIT_MAGIC = bytes.fromhex("0009 0ff00ff00ff00ff000 0001".replace(" ", ""))


@dataclass(frozen=True)
class BitHeader:
    """The fields of a Xilinx ``.bit`` header and where the raw configuration data starts."""

    design: str
    part: str
    date: str
    time: str
    data_offset: int
    data_length: int


_HEADER_BYTES = 1 << 20
"""Bytes of a bitstream that hold its header: the ``.bit`` fields ``a`` to ``d`` (at most 64 KiB
each) or the ECP5 ``Part:`` comment (in its first 4 KiB)."""


def parse_bit(data: bytes, size: int | None = None) -> BitHeader:
    """Parse the header of a Xilinx ``.bit`` file.

    ``data`` is the whole file, or its first bytes (at least the header) when ``size`` gives the
    file's length: the data length declared in the header is then checked against ``size``.

    Raises
    ------
    LowbitError
        If ``data`` does not start with the ``.bit`` magic or a field is cut short.
    """
    size = len(data) if size is None else size
    if not data.startswith(_BIT_MAGIC):
        raise LowbitError("not a Xilinx .bit file (the header magic is missing)")
    pos = len(_BIT_MAGIC)
    fields: dict[str, str] = {}
    while pos < len(data):
        key = chr(data[pos])
        if key == "e":
            if pos + 5 > len(data):
                break
            length = int.from_bytes(data[pos + 1 : pos + 5], "big")
            if pos + 5 + length > size:
                raise LowbitError(
                    f".bit file is cut short: {length} data bytes declared, "
                    f"{size - pos - 5} present"
                )
            return BitHeader(
                design=fields.get("a", ""),
                part=fields.get("b", ""),
                date=fields.get("c", ""),
                time=fields.get("d", ""),
                data_offset=pos + 5,
                data_length=length,
            )
        if key not in "abcd" or pos + 3 > len(data):
            raise LowbitError(f".bit header: unexpected field {key!r} at byte {pos}")
        length = int.from_bytes(data[pos + 1 : pos + 3], "big")
        fields[key] = data[pos + 3 : pos + 3 + length].rstrip(b"\0").decode("ascii", "replace")
        pos += 3 + length
    raise LowbitError(".bit header has no data field ('e')")


def bit_to_bin(data: bytes) -> bytes:
    """The raw configuration data of a ``.bit`` file with every 32-bit word byte-swapped."""
    h = parse_bit(data)
    raw = data[h.data_offset : h.data_offset + h.data_length]
    if len(raw) % 4:
        raise LowbitError(f".bit data length {len(raw)} is not a multiple of 4 bytes")
    out = bytearray(len(raw))
    out[0::4], out[1::4], out[2::4], out[3::4] = raw[3::4], raw[2::4], raw[1::4], raw[0::4]
    return bytes(out)


def bitstream_part(path: Path) -> str | None:
    """The part a bitstream names (``.bit`` header or ECP5 ``Part:`` comment), or ``None``; only
    the file's first bytes are read."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            data = f.read(_HEADER_BYTES)
    except OSError as e:
        raise LowbitError(f"{path}: cannot read the bitstream ({e.strerror or e})") from None
    if data.startswith(_BIT_MAGIC):
        try:
            return parse_bit(data, size).part
        except LowbitError as e:
            raise LowbitError(f"{path}: {e}") from None
    m = re.search(rb"Part: ([A-Za-z0-9-]+)", data[:4096])
    return m.group(1).decode() if m else None


def _part_matches(named: str, board: Board) -> bool:
    """Whether a part named in a bitstream is ``board``'s part (Xilinx headers drop ``xc`` and the
    grade)."""
    named, part = named.lower(), board.part.lower()
    if board.family in ("zynq-7000", "zynq-ultrascale+"):
        stem = re.sub(r"^xc", "", part)
        stem = re.sub(r"-\d\w*(-\w)?$", "", stem).replace("-", "")
        return re.sub(r"^xc", "", named).replace("-", "").startswith(stem)
    if board.family == "ecp5":  # LFE5U-85F-6CABGA381 vs lfe5u-85f-6bg381c
        return named.split("-")[:2] == part.split("-")[:2]
    return named.startswith(part)


@dataclass
class FlashPlan:
    """What :func:`flash` will do: the bitstream, and the commands as a user would type them.

    ``built`` is false for a Vivado plan whose bitstream Vivado has not written yet: the commands
    then name the file it will write, and :func:`flash` refuses the plan.
    """

    board: Board
    method: str
    bitstream: Path
    commands: list[str]
    argv: list[str] | None = None
    files: dict = field(default_factory=dict)
    built: bool = True


def load_manifest(out: Path) -> dict:
    """``build.json`` of the build in ``out``: an object whose ``board``, ``part``, ``flow`` and
    ``bitstream`` entries, when present, are strings."""
    path = out / "build.json"
    if not path.is_file():
        raise LowbitError(f"{out}: no build.json; expected the output of 'lowbit build'")
    doc = read_json(confine(out, "build.json", place="build directory"), "build manifest")
    if not isinstance(doc, dict):
        raise LowbitError(f"{path}: expected a JSON object, not {type(doc).__name__}")
    for key in ("board", "part", "flow"):
        if key in doc and not isinstance(doc[key], str):
            raise LowbitError(f"{path}: key {key!r} must be a string, not {doc[key]!r}")
    return doc


def plan_flash(
    out: str | os.PathLike,
    board: str | Board,
    via: str = "openfpgaloader",
    *,
    root: str | os.PathLike = "/",
    manager: str = "fpga0",
) -> FlashPlan:
    """Check the build in ``out`` against ``board`` and return the commands that program it.

    Raises
    ------
    LowbitError
        If ``out`` is no build, its bitstream is missing (except in a Vivado plan, whose plan
        says it is not built yet), was built for another part or board, or the method does not
        apply to the board.
    """
    out, board = Path(out), get_board(board)
    if via not in METHODS:
        raise LowbitError(f"--via must be one of {', '.join(METHODS)}, not {via!r}")
    manifest = load_manifest(out)
    if manifest.get("part") != board.part or manifest.get("board") != board.name:
        raise LowbitError(
            f"{out} was built for {manifest.get('board')} (part {manifest.get('part')}), "
            f"not {board.name} (part {board.part})"
        )
    name = manifest.get("bitstream")
    where = str(out / "build.json")
    bitstream = confine(out, name, where, "bitstream", "build directory") if name else out
    built = bool(name) and bitstream.is_file()
    if not built and not (name and manifest.get("flow") == "vivado"):
        raise LowbitError(f"{out}: no bitstream {name!r}")
    if via == "fpga-manager" and not re.fullmatch(r"[\w.+-]+", bitstream.name):
        raise LowbitError(
            f"{where}: key 'bitstream' names {name!r}; the FPGA manager takes a file name of "
            "letters, digits, '.', '_', '+' and '-'"
        )
    if built:
        check(str(bitstream), "file size (bytes)", bitstream.stat().st_size, LIMITS.file_bytes)
        named = bitstream_part(bitstream)
        if named is not None and not _part_matches(named, board):
            raise LowbitError(
                f"{bitstream}: the bitstream is for part {named}, not {board.name}'s {board.part}"
            )
    plan = _plan_method(board, via, bitstream, root=Path(root), manager=manager, built=built)
    if not built:
        plan.commands.insert(0, f"# {_NOT_BUILT.format(bitstream=bitstream, out=out)}")
    return plan


_NOT_BUILT = "{bitstream} is not built yet: run the Vivado plan first (sh build.sh in {out})"
"""What a plan of a Vivado build says before Vivado has written its bitstream."""


def _plan_method(
    board: Board, via: str, bitstream: Path, *, root: Path, manager: str, built: bool
) -> FlashPlan:
    """The commands of method ``via`` for ``bitstream`` (checked against ``board``)."""
    if via == "openfpgaloader":
        if not board.openfpgaloader_board:
            raise LowbitError(
                f"board {board.name!r} has no openFPGALoader board name; use another --via"
            )
        argv = openfpgaloader_command() + ["-b", board.openfpgaloader_board, str(bitstream)]
        return FlashPlan(board, via, bitstream, [shlex.join(argv)], argv=argv, built=built)
    if not board.has_ps:
        raise LowbitError(
            f"board {board.name!r} has no Zynq processing system; --via {via} does not apply"
        )
    if via == "pynq":
        hwh = bitstream.with_suffix(".hwh")
        if built and not hwh.is_file():
            raise LowbitError(
                f"{bitstream.parent}: PYNQ needs {hwh.name} next to {bitstream.name} "
                "(written by the Vivado plan)"
            )
        code = f"from pynq import Overlay; Overlay({str(bitstream)!r})"
        command = f'python3 -c "{code}"   # on the board, as root'
        return FlashPlan(board, via, bitstream, [command], built=built)
    if via == "xsct":
        target = "xc7z*" if board.ps == "PS7" else "PL"
        tcl = [
            "connect",
            f'targets -set -nocase -filter {{name =~ "{target}"}}',
            f"fpga -file {{{bitstream.resolve()}}}",
            "disconnect",
        ]
        return FlashPlan(
            board,
            via,
            bitstream,
            ["xsct flash.tcl   # flash.tcl:"] + [f"  {t}" for t in tcl],
            argv=["xsct"],
            files={"tcl": "\n".join(tcl) + "\n"},
            built=built,
        )
    if bitstream.suffix != ".bit":
        raise LowbitError(f"{bitstream}: the FPGA manager path converts a Xilinx .bit file")
    name = bitstream.with_suffix(".bin").name
    firmware = root / "lib" / "firmware" / name
    mgr = root / "sys" / "class" / "fpga_manager" / manager
    files = {"bin": firmware, "flags": mgr / "flags", "firmware": mgr / "firmware"}
    commands = [
        f"# convert {bitstream} to {firmware} (header removed, 32-bit words byte-swapped)",
        f"echo 0 > {files['flags']}",
        f"echo {name} > {files['firmware']}",
    ]
    return FlashPlan(board, via, bitstream, commands, files=files, built=built)


def flash(plan: FlashPlan, *, timeout: float = 600) -> str:
    """Carry out ``plan``; return a one-line summary.

    Raises
    ------
    LowbitError
        If the bitstream is not built yet, or the programmer fails (no cable, no board, no FPGA
        manager); the message quotes its reason.
    """
    if not plan.built:
        raise LowbitError(_NOT_BUILT.format(bitstream=plan.bitstream, out=plan.bitstream.parent))
    if plan.method == "openfpgaloader":
        if plan.argv is None:
            raise LowbitError("the openFPGALoader plan has no command line (argv)")
        try:
            proc = subprocess.run(plan.argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LowbitError(f"openFPGALoader did not finish within {timeout:g} s") from None
        except OSError as e:
            raise LowbitError(f"cannot run openFPGALoader: {e}") from None
        text = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            if "error while loading shared libraries" in text:
                raise LowbitError(
                    f"openFPGALoader cannot start: {text.splitlines()[-1]} "
                    f"(install libusb-1.0-0 and libftdi1-2)"
                )
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            reason = "; ".join(
                ln for ln in lines if re.search(r"unable|fail|error|not found", ln, re.I)
            ) or (lines[-1] if lines else "no output")
            cable = (
                " (is the board connected by USB, and may this user open it?)"
                if re.search(r"ftdi|usb|cable|device not found|JTAG init", text, re.I)
                else ""
            )
            raise LowbitError(
                f"openFPGALoader could not program {plan.board.name} "
                f"(exit status {proc.returncode}): {reason}{cable}"
            )
        return f"programmed {plan.board.name} with {plan.bitstream.name} via openFPGALoader"
    if plan.method == "pynq":
        try:
            from pynq import Overlay
        except ImportError:
            raise LowbitError(
                "--via pynq needs the 'pynq' package: run 'lowbit flash' on the board's PYNQ "
                "image, or use --via fpga-manager or xsct"
            ) from None
        Overlay(str(plan.bitstream))
        return f"downloaded {plan.bitstream.name} to {plan.board.name} with pynq.Overlay"
    if plan.method == "xsct":
        exe = shutil.which("xsct")
        if exe is None:
            raise LowbitError(
                "--via xsct needs Xilinx's xsct on PATH (Vitis or the Vivado Lab tools) and a "
                "hardware server reaching the board's JTAG cable"
            )
        script = atomic_write(plan.bitstream.with_name("flash.tcl"), plan.files["tcl"])
        proc = subprocess.run([exe, str(script)], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise LowbitError(
                f"xsct could not program {plan.board.name} (exit status {proc.returncode}): "
                f"{tail[0]}"
            )
        return f"programmed {plan.board.name} with {plan.bitstream.name} via xsct"
    files = plan.files
    if not files["flags"].parent.is_dir():
        raise LowbitError(
            f"no FPGA manager at {files['flags'].parent} (is this the board, running Linux "
            f"with the FPGA manager? pass --sysfs-root for another root)"
        )
    data = bit_to_bin(read_limited(plan.bitstream, "bitstream"))
    try:
        files["bin"].parent.mkdir(parents=True, exist_ok=True)
        files["bin"].write_bytes(data)
        files["flags"].write_text("0\n")
        files["firmware"].write_text(files["bin"].name + "\n")
    except OSError as e:
        raise LowbitError(f"FPGA manager: {e}") from None
    return f"loaded {files['bin'].name} ({len(data)} bytes) through {files['flags'].parent}"
