"""The simulated PYNQ overlay's shell: ``lowbit_axis`` with a DDR model behind each weight fetcher.

:class:`SimulatedShell` (Verilog module ``lowbit_sim_shell``, written by
:func:`lowbit.deploy.simbackend.shell_wrapper_verilog`) is the top that
:class:`~lowbit.deploy.simbackend.SimulatedOverlay` Verilates with the plan's own ``lowbit_top.v``,
``lowbit_ctrl.v``, ``lowbit_axis.v`` and ``lowbit_wfetch.v``. It exposes ``lowbit_axis``'s
AXI4-Stream ports as streams the compiled fast path drives (:mod:`lowbit.sim.fast`):

* ``i``: ``s_axis``, ``tdata`` in the low ``in_tdata_bits`` bits of the payload and ``tlast`` as its
  top bit; ``o``: ``m_axis`` the same way;
* ``ctrl``: ``s_axi``, the control block's AXI4-Lite port (Amaranth names: ``ctrl__awaddr`` ...);
* ``ddr<k>__we`` / ``__addr`` / ``__data``: for weight port ``k``, the load port of a
  :data:`SIM_DDR_VERILOG` memory (``lowbit_sim_ddr``) on its AXI read port ``m_axi_w<k>``:
  32-bit words written one per cycle while ``we`` is 1, ``2 ** log_depth`` words in all, read
  back at the rate and latency of the board's DDR (``rate`` bits per cycle, ``latency`` cycles per
  burst);
* ``clk`` and ``rst`` (active high; ``lowbit_axis`` gets ``aresetn = ~rst``).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .axil import AXI4LiteSignature
from .control import ADDR_BITS
from .shells import black_box
from .shells_axis import WeightPort, _weight_ports, axis_adapter_signature
from .wfetch import AXI4ReadSignature

__all__ = ["SIM_DDR_VERILOG", "log_depth", "sim_ddr_signature", "SimulatedShell"]

_DDR_READ = ("araddr", "arlen", "arvalid", "arready", "rdata", "rresp", "rlast", "rvalid", "rready")
"""The AXI4 read signals ``lowbit_sim_ddr`` has (not ``arsize``, ``arburst``, ``arcache`` nor
``arprot``)."""

SIM_DDR_VERILOG = """
// lowbit_sim_ddr: a simulation-only AXI4 read slave standing for the PS's DDR behind one AXI-HP
// port. 32-bit words loaded through (we, waddr, wdata); a read of byte address A returns words
// (A >> 2) & (DEPTH - 1) onwards (buffers are aligned to a power of two at least their size).
// Up to 16 bursts queued; a burst's data starts LATENCY cycles after its address was accepted; a
// beat goes out when the credit (RATE bits per cycle, at most two beats banked) covers it.
module lowbit_sim_ddr #(parameter AW = 32, DW = 64, LOG_DEPTH = 10, RATE = 64, LATENCY = 16) (
  input wire clk, input wire rst,
  input wire we, input wire [LOG_DEPTH-1:0] waddr, input wire [31:0] wdata,
  input wire [AW-1:0] araddr, input wire [7:0] arlen, input wire arvalid, output wire arready,
  output wire [DW-1:0] rdata, output wire [1:0] rresp, output wire rlast, output wire rvalid,
  input wire rready
);
  localparam N = DW / 32;
  reg [31:0] mem [0:(1 << LOG_DEPTH) - 1];
  always @(posedge clk) if (we) mem[waddr] <= wdata;
  reg [LOG_DEPTH-1:0] qa [0:15];
  reg [7:0] ql [0:15];
  reg [31:0] qt [0:15];
  reg [4:0] count;
  reg [3:0] head, tail;
  reg [31:0] now;
  reg [7:0] beat;
  reg [15:0] credit;
  wire active = count != 0 && now >= qt[head];
  assign arready = count != 16;
  assign rvalid = active && credit >= DW;
  assign rlast = beat == ql[head];
  assign rresp = 2'b00;
  genvar g;
  generate for (g = 0; g < N; g = g + 1) begin : word
    wire [LOG_DEPTH-1:0] idx = qa[head] + beat * N + g;
    assign rdata[32 * g +: 32] = mem[idx];
  end endgenerate
  wire push = arvalid && arready;
  wire pop = rvalid && rready && rlast;
  always @(posedge clk) begin
    if (rst) begin
      count <= 0; head <= 0; tail <= 0; now <= 0; beat <= 0; credit <= 0;
    end else begin
      now <= now + 1;
      if (push) begin
        qa[tail] <= araddr[LOG_DEPTH+1:2];
        ql[tail] <= arlen;
        qt[tail] <= now + LATENCY;
        tail <= tail + 1;
      end
      count <= count + push - pop;
      if (rvalid && rready) begin
        beat <= rlast ? 0 : beat + 1;
        if (pop) head <= head + 1;
      end
      credit <= (credit + RATE - ((rvalid && rready) ? DW : 0) > 2 * DW) ? 2 * DW
                : credit + RATE - ((rvalid && rready) ? DW : 0);
    end
  end
endmodule
"""


def log_depth(image_bytes: int) -> int:
    """log2 of the 32-bit words of a simulated memory holding ``image_bytes`` bytes (at least 16
    words)."""
    if not isinstance(image_bytes, int) or isinstance(image_bytes, bool) or image_bytes < 0:
        raise ValueError(f"image_bytes must be a non-negative integer, not {image_bytes!r}")
    return max(4, (-(-image_bytes // 4) - 1).bit_length())


def sim_ddr_signature(addr_bits: int, data_bits: int, log_depth: int) -> wiring.Signature:
    """The ports of ``lowbit_sim_ddr`` (:data:`SIM_DDR_VERILOG`) besides ``clk`` and ``rst``: the
    load port and the AXI4 read channels it answers (a slave: ``In`` = driven by the master)."""
    members = {"we": In(1), "waddr": In(log_depth), "wdata": In(32)}
    read = AXI4ReadSignature(addr_bits, data_bits).flip().members
    members.update({name: read[name] for name in _DDR_READ})
    return wiring.Signature(members)


class SimulatedShell(wiring.Component):
    """``lowbit_axis`` with its streams as ``i``/``o`` and a DDR model per weight port (see the
    module docstring). Simulation only.

    Parameters
    ----------
    in_tdata_bits, out_tdata_bits : int
        ``tdata`` widths of ``lowbit_axis`` (``build.json``'s ``axis``).
    weight_ports : sequence of WeightPort
        ``lowbit_axis``'s weight ports, ``weight_ports[k].index == k``.
    log_depths : sequence of int, optional
        log2 of the 32-bit words of each port's memory; by default :func:`log_depth` of the port's
        weight image (:attr:`~lowbit.hw.axi.wfetch.WeightFetcher.image_bytes`).
    rate : int
        Bits per cycle each memory delivers.
    latency : int
        Cycles from a burst's address to its first data beat.
    """

    def __init__(
        self,
        *,
        in_tdata_bits: int,
        out_tdata_bits: int,
        weight_ports: Sequence[WeightPort] = (),
        log_depths: Sequence[int] | None = None,
        rate: int = 64,
        latency: int = 16,
    ):
        for name, v in (
            ("in_tdata_bits", in_tdata_bits),
            ("out_tdata_bits", out_tdata_bits),
            ("rate", rate),
            ("latency", latency),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.in_tdata_bits, self.out_tdata_bits = in_tdata_bits, out_tdata_bits
        self.weight_ports = _weight_ports(weight_ports)
        if log_depths is None:
            log_depths = [log_depth(p.fetcher().image_bytes) for p in self.weight_ports]
        log_depths = list(log_depths)
        if len(log_depths) != len(self.weight_ports):
            raise ValueError(
                f"log_depths must hold one entry per weight port "
                f"({len(self.weight_ports)}), not {log_depths!r}"
            )
        for k, d in enumerate(log_depths):
            if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= 30:
                raise ValueError(f"log_depths[{k}] must be an integer in 1..30, not {d!r}")
        self.log_depths, self.rate, self.latency = log_depths, rate, latency
        self.adapter = axis_adapter_signature(in_tdata_bits, out_tdata_bits, self.weight_ports)
        members = {
            "ctrl": In(AXI4LiteSignature(ADDR_BITS)),
            "i": In(stream.Signature(in_tdata_bits + 1)),
            "o": Out(stream.Signature(out_tdata_bits + 1)),
        }
        for p, d in zip(self.weight_ports, log_depths):
            members[f"ddr{p.index}"] = In(
                wiring.Signature({"we": Out(1), "addr": Out(d), "data": Out(32)})
            )
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        tin, tout = self.in_tdata_bits, self.out_tdata_bits
        axis = {
            "aclk": ClockSignal(),
            "aresetn": ~ResetSignal(),
            "s_axis_tdata": self.i.payload[:tin],
            "s_axis_tvalid": self.i.valid,
            "s_axis_tready": self.i.ready,
            "s_axis_tlast": self.i.payload[tin],
            "m_axis_tdata": self.o.payload[:tout],
            "m_axis_tvalid": self.o.valid,
            "m_axis_tready": self.o.ready,
            "m_axis_tlast": self.o.payload[tout],
        }
        axis.update(
            {
                f"s_axi_{name}": getattr(self.ctrl, name)
                for name in AXI4LiteSignature(ADDR_BITS).members
            }
        )
        for p, depth in zip(self.weight_ports, self.log_depths):
            read = AXI4ReadSignature(p.addr_bits, p.data_bits)
            bus = {
                name: Signal(read.members[name].shape, name=f"{p.bus}_{name}")
                for name in read.members
            }
            axis.update({f"{p.bus}_{name}": s for name, s in bus.items()})
            load = getattr(self, f"ddr{p.index}")
            ports = {"we": load.we, "waddr": load.addr, "wdata": load.data}
            ports.update({name: bus[name] for name in _DDR_READ})
            m.submodules[f"ddr{p.index}"] = black_box(
                "lowbit_sim_ddr",
                sim_ddr_signature(p.addr_bits, p.data_bits, depth),
                ports,
                clk=ClockSignal(),
                rst=ResetSignal(),
                params={
                    "AW": p.addr_bits,
                    "DW": p.data_bits,
                    "LOG_DEPTH": depth,
                    "RATE": self.rate,
                    "LATENCY": self.latency,
                },
            )
        m.submodules.shell = black_box("lowbit_axis", self.adapter, axis)
        return m
